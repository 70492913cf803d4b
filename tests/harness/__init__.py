"""What the tests and the benchmarks both drive the product with (not oracles: tools).

bench/ may import this package, as it may import tests/oracles/; nothing here imports
bench/ or another part of tests/.
"""
