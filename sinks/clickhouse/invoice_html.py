"""`tokenops invoice --format html`: one self-contained page a person can read or print.

Every value from the store (tenant ids, model names) is HTML-escaped: ids are whatever a
producer sent. No scripts, no external assets, so the page renders offline.
"""

from __future__ import annotations

from html import escape

from tokenops.sinks.clickhouse.invoice_model import Invoice

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2.5rem auto; max-width: 52rem;
       color: #1d232b; background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 .2rem; }
.meta { color: #4b5563; margin-bottom: 1.2rem; }
.stamp { display: inline-block; padding: .25rem .7rem; border: 2px solid; font-weight: 700;
         letter-spacing: .05em; }
.final { color: #166534; border-color: #166534; }
.provisional { color: #9a3412; border-color: #9a3412; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0 1.4rem; }
th, td { padding: .35rem .5rem; border-bottom: 1px solid #d1d5db; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.total td { font-weight: 700; font-size: 1.15rem; border-bottom: 3px double #1d232b; }
.small { font-size: .8rem; color: #4b5563; word-break: break-all; }
"""


def _cells(values: list[object], numeric: set[int]) -> str:
    return "".join(
        f'<td class="n">{escape(str(v))}</td>' if i in numeric else f"<td>{escape(str(v))}</td>"
        for i, v in enumerate(values)
    )


def render(bill: Invoice) -> str:
    month = bill.month.isoformat()[:7]
    finality = bill.finality
    if bill.final:
        stamp = f'<span class="stamp final">FINAL · {escape(bill.number or "")}</span>'
    else:
        stamp = '<span class="stamp provisional">PROVISIONAL · month open</span>'
    lines = "".join(
        "<tr>"
        + _cells(
            [
                line.model,
                line.region,
                line.token_type,
                f"{line.quantity:,}",
                line.unit_price_per_million,
                line.currency,
                line.amount,
            ],
            {3, 4, 6},
        )
        + "</tr>"
        for line in bill.lines
    )
    adjustments = "".join(
        "<tr>"
        + _cells(
            [
                f"{a.original_invoice} ({a.original_month})",
                a.window_start,
                a.model,
                a.token_type,
                a.event_count,
                f"{a.quantity:,}",
                a.amount,
            ],
            {4, 5, 6},
        )
        + "</tr>"
        for a in bill.adjustments
    )
    totals = "".join(
        f'<tr class="total"><td colspan="6">Total {escape(currency)}</td>'
        f'<td class="n">{escape(str(total))}</td></tr>'
        for currency, total in bill.totals.items()
    )
    adjustment_table = (
        "<h2>Adjustments to closed invoices</h2><table><tr><th>original invoice</th>"
        '<th>window</th><th>model</th><th>token type</th><th class="n">events</th>'
        f'<th class="n">quantity</th><th class="n">amount</th></tr>{adjustments}</table>'
        if bill.adjustments
        else ""
    )
    as_of = finality.as_of.isoformat() if finality.as_of else "unknown"
    details = f"as of {escape(as_of)} · open windows {escape(str(finality.open_windows))}" + (
        f" · content hash {escape(bill.content_hash)}" if bill.content_hash else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Invoice {escape(bill.tenant_id)} {month}</title><style>{_STYLE}</style></head>
<body>
<h1>Invoice {escape(month)}</h1>
<div class="meta">Tenant <b>{escape(bill.tenant_id)}</b> · billing time zone
{escape(bill.time_zone)}</div>
<p>{stamp}</p>
<table><tr><th>model</th><th>region</th><th>token type</th><th class="n">quantity</th>
<th class="n">price / 1M</th><th>currency</th><th class="n">amount</th></tr>
{lines}{totals}</table>
{adjustment_table}
<p class="small">{details}</p>
</body></html>
"""
