"""Report tables as CSV for the spreadsheets supervisors use (Excel and LibreOffice set to
Indonesian).

An Indonesian locale reads ``;`` as the list separator and ``,`` as the decimal comma, so that
is what is written, with a UTF-8 byte order mark (Excel otherwise guesses a legacy code page and
mangles names) and CRLF line ends. A field holding ``;``, a quote or a line break is quoted with
its quotes doubled (RFC 4180). A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return would be run as a formula by a spreadsheet (an operator's name is typed by
people), so it gets a leading apostrophe, which spreadsheets show as text and do not display.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Final

from telephony.reports.model import SERVICE_LEVEL_SECONDS, Figures, ShiftReport

TABLES: Final = ("shifts", "operators", "queues")
BOM: Final = "\ufeff"
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")

FIGURE_HEADERS: Final = (
    "Panggilan", "Ditawarkan", "Dijawab", "Ditinggalkan",
    "Rata-rata tunggu (detik)", "Tunggu persentil 90 (detik)", "Rata-rata bicara (detik)",
    "Rata-rata penyelesaian (detik)",
    *(f"Tingkat layanan {t} detik (%)" for t in SERVICE_LEVEL_SECONDS),
    "Berlabel", "Iseng atau diam", "Porsi iseng (%)",
)


def text_cell(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def number_cell(value: float | None, decimals: int = 1) -> str:
    """A number with a decimal comma; empty when unknown."""
    if value is None:
        return ""
    return f"{value:.{decimals}f}".replace(".", ",")


def figure_cells(f: Figures) -> list[str]:
    """The cells of one row's figures, in :data:`FIGURE_HEADERS` order."""
    return [
        str(f.calls), str(f.offered), str(f.answered), str(f.abandoned),
        number_cell(f.mean_wait), number_cell(f.p90_wait), number_cell(f.mean_talk),
        number_cell(f.mean_wrapup),
        *(number_cell(f.service_levels[t].percent) for t in SERVICE_LEVEL_SECONDS),
        str(f.labelled), str(f.nuisance), number_cell(f.prank_share.percent),
    ]


def render(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A whole CSV document: BOM, header, rows."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, delimiter=";", quotechar='"', quoting=csv.QUOTE_MINIMAL,
                        lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def report_csv(report: ShiftReport, table: str) -> str:
    """One of the report's tables (:data:`TABLES`) as CSV, with a total row last."""
    total = ["Jumlah"]
    if table == "shifts":
        header = ["Tanggal", "Sif", *FIGURE_HEADERS]
        rows = [[slot.day.isoformat(), text_cell(slot.name), *figure_cells(f)]
                for slot, f in report.shifts]
        total += [""]
    elif table == "operators":
        header = ["Operator", "Nama", *FIGURE_HEADERS]
        rows = [[text_cell(op), text_cell(name), *figure_cells(f)]
                for op, name, f in report.operators]
        total += [""]
    elif table == "queues":
        header = ["Antrean", *FIGURE_HEADERS]
        rows = [[text_cell(queue), *figure_cells(f)] for queue, f in report.queues]
    else:
        raise ValueError(f"no such report table: {table!r}")
    # Per operator a call counts for everyone rung, so that table's rows do not add up to
    # the total; the total row is the period's own figures all the same.
    rows.append([*total, *figure_cells(report.total)])
    return render(header, rows)
