"""Reference implementations the product code replaced: exactness oracles.

The tests check the current code against them, and bench/ runs them as the "before"
figure. bench/ may import this package; tests never import bench/ for an oracle.
"""
