"""The HTML page shell shared by the run report and the compare diff: inline CSS, inline script, the
ladder arrow-head definitions, and small building blocks (outcome badges, tables).  Nothing is fetched:
no external fonts, scripts, styles or images."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from . import ladder
from .fmt import esc

OUTCOME_MARK = {
    "passed": "✔ passed",
    "failed": "✘ failed",
    "error": "! error",
    "skipped": "– skipped",
    "xfailed": "✔ xfailed",
    "xpassed": "✘ xpassed",
}

CSS = """
:root{--fg:#1b1b1b;--muted:#666;--line:#d8d8d8;--bg:#fff;--soft:#f6f7f9}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);
 background:var(--bg);margin:0 auto;padding:16px 24px 48px;max-width:1280px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid var(--line);
 padding-bottom:4px}h3{font-size:14px;margin:14px 0 6px}
a{color:#0b57d0}code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{background:var(--soft);border:1px solid var(--line);padding:8px;overflow-x:auto;white-space:pre-wrap}
table{border-collapse:collapse;margin:4px 0 8px}
th,td{border:1px solid var(--line);padding:3px 7px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:var(--muted)}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:10px 0}
.meta dt{color:var(--muted)}.meta dd{margin:0}
.badge{display:inline-block;border-radius:3px;padding:1px 7px;font-size:12px;font-weight:600;white-space:nowrap}
.o-passed{background:#d7f0dc;color:#175c26}.o-failed{background:#fbd3d0;color:#8e1b12}
.o-error{background:#ffd8b0;color:#7a3b00}.o-skipped{background:#eceff1;color:#555}
.o-xfailed{background:#e3eaf5;color:#2d4a73}.o-xpassed{background:#ffecb3;color:#6d4c00}
.o-none{background:#fff;color:#bbb}
.totals .badge{margin-right:6px;font-size:13px}.zero{opacity:.45}
.given{color:#8e1b12;font-weight:600}
.runstatus{border:2px solid #c62828;border-left-width:8px;background:#fdecea;border-radius:4px;padding:4px 12px;
 margin:10px 0}.runstatus.st-interrupted,.runstatus.st-running{border-color:#e65100;background:#fff3e0}
.runstatus .st-line{font-size:17px;font-weight:700;margin:6px 0}.runstatus table{background:#fff}
b.st-incomplete,b.st-complete{color:#8e1b12}b.st-interrupted,b.st-running{color:#a03f00}
.filters{position:sticky;top:0;background:var(--bg);padding:6px 0;border-bottom:1px solid var(--line);z-index:2;
 display:flex;gap:16px;align-items:center;flex-wrap:wrap}
table.matrix td.cell{text-align:center;min-width:92px}
table.matrix td.cell a{display:block;margin:-3px -7px;padding:3px 7px;text-decoration:none;color:inherit}
table.matrix td.area{color:var(--muted)}
details.case{border:1px solid var(--line);border-radius:4px;margin:8px 0;padding:0 10px;scroll-margin-top:48px}
h2{scroll-margin-top:48px}
details.case[open]{padding-bottom:10px}
details.case>summary{cursor:pointer;padding:6px 0;font-weight:600;list-style-position:outside}
details.case>summary .mono{font-weight:normal;color:var(--muted);margin-left:8px}
.message{border-left:4px solid #c62828;max-height:32em;overflow:auto}
.refs{margin:4px 0;padding-left:20px}
.ladderbox{overflow-x:auto;margin:6px 0;border:1px solid var(--line);background:#fff}
.cols{display:flex;gap:12px;align-items:flex-start;flex-wrap:wrap}
.cols>div{flex:1 1 0;min-width:320px}
body.wide{max-width:none}.cols.side{flex-wrap:nowrap;overflow-x:auto}
.cols.side>div{flex:0 0 auto;min-width:0}.cols.side svg.ladder{max-width:none}
blockquote{margin:0;padding:2px 10px;border-left:4px solid #90a4ae;font-style:italic}
.v-confirmed{background:#d7f0dc;color:#175c26}.v-contradicted{background:#fbd3d0;color:#8e1b12}
.v-undecided{background:#eceff1;color:#444;border:1px dashed #90a4ae}
.claim{border:1px solid var(--line);border-left:4px solid #90a4ae;border-radius:4px;margin:10px 0;padding:6px 10px;
 scroll-margin-top:48px}
.claim.v-confirmed,.claim.v-contradicted,.claim.v-undecided{background:none;color:inherit}
.claim.v-confirmed{border-left-color:#2e7d32}.claim.v-contradicted{border-left-color:#c62828}
.claim .meta{margin:6px 0}
table.checks td:first-child{text-align:center;font-weight:bold;width:1.6em}
table.checks tr.bad td{background:#fdecea}
table.checks tr.bad td:first-child{color:#8e1b12;border-left:4px solid #c62828}
table.checks tr.ok td:first-child{color:#175c26}table.checks tr.unknown td:first-child{color:var(--muted)}
.ckline{margin:2px 0 6px}.ckline .bad{color:#8e1b12;font-weight:600}
table.segs tr.unx td{background:#fdecea}table.segs tr.unx td:first-child{border-left:4px solid #c62828}
table.segs tr.crafted td{color:#555;font-style:italic}
.tag{display:inline-block;border:1px solid currentColor;border-radius:3px;padding:0 4px;font-size:11px;
 font-style:normal;white-space:nowrap}.tag.unx{color:#8e1b12;font-weight:600}.tag.crafted{color:#6d4c00;
 border-style:dashed}
.tol{vertical-align:middle}.tol .band{fill:#c8e6c9}.tol .exp{stroke:#2e7d32;stroke-width:2}
.tol .ok{fill:#1565c0}.tol .bad{fill:#c62828}.tol .ax{stroke:#bbb}
.tol .span{stroke-width:2}.tol .span.ok{stroke:#1565c0}.tol .span.bad{stroke:#c62828}
.diffline-add{color:#175c26}.diffline-del{color:#8e1b12}
@media print{
 body{max-width:none;padding:0;font-size:11px}
 .filters,.noprint{display:none!important}
 details.case{break-inside:avoid-page;border:none;border-top:1px solid #999;border-radius:0}
 .ladderbox{overflow:visible;border:none}.message{max-height:none}svg.ladder{max-width:100%}
 .claim{break-inside:avoid-page}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 a{color:inherit;text-decoration:none}
 h2{break-after:avoid}
}
"""

SCRIPT = """
(function(){
'use strict';
function all(sel,root){return Array.prototype.slice.call((root||document).querySelectorAll(sel));}
function bad(o){return o==='failed'||o==='error'||o==='xpassed';}
var onlyBad=document.getElementById('f-failed'),area=document.getElementById('f-area'),
    fam=document.getElementById('f-family'),count=document.getElementById('f-count');
function apply(){
  var only=onlyBad?onlyBad.checked:false,a=area?area.value:'',f=fam?fam.value:'',shown=0,
      rows=all('#matrix-table tbody tr');
  rows.forEach(function(tr){
    var cells=all('td[data-o]',tr).filter(function(td){return !f||td.getAttribute('data-col')===f;});
    var ok=(!a||tr.getAttribute('data-area')===a)&&cells.length>0&&
      (!only||cells.some(function(td){return bad(td.getAttribute('data-o'));}));
    tr.hidden=!ok;if(ok){shown++;}
  });
  all('#matrix-table [data-col]').forEach(function(c){c.hidden=!!f&&c.getAttribute('data-col')!==f;});
  all('details.case').forEach(function(d){
    d.hidden=!((!a||d.getAttribute('data-area')===a)&&(!f||d.getAttribute('data-col')===f)&&
      (!only||bad(d.getAttribute('data-o'))));
  });
  if(count){count.textContent=shown+' of '+rows.length+' rows shown';}
}
[onlyBad,area,fam].forEach(function(el){if(el){el.addEventListener('change',apply);}});
function openHash(){
  var id=decodeURIComponent(location.hash.slice(1)),el=id?document.getElementById(id):null;
  if(el&&el.tagName==='DETAILS'){el.hidden=false;el.open=true;}
}
window.addEventListener('hashchange',openHash);
window.addEventListener('beforeprint',function(){all('details').forEach(function(d){d.open=true;});});
all('button[data-open]').forEach(function(b){b.addEventListener('click',function(){
  var open=b.getAttribute('data-open')==='1';all('details.case').forEach(function(d){d.open=open;});});});
apply();openHash();
})();
"""


def page(title: str, body: Iterable[str], wide: bool = False) -> str:
    """A complete, self-contained HTML document; ``wide`` drops the maximum page width."""
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}{ladder.CSS}</style></head>"
    )
    body_tag = '<body class="wide">' if wide else "<body>"
    return "".join([head, body_tag, ladder.defs(), *body, f"<script>{SCRIPT}</script></body></html>\n"])


def badge(outcome: str) -> str:
    return f'<span class="badge o-{esc(outcome)}">{esc(OUTCOME_MARK.get(outcome, outcome))}</span>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "", row_cls: Sequence[str] = ()) -> str:
    """A table from already-escaped cell HTML; empty string when there are no rows.  ``row_cls`` gives
    rows a class, in order (missing or empty: none)."""
    body = "".join(
        (f'<tr class="{esc(row_cls[i])}">' if i < len(row_cls) and row_cls[i] else "<tr>")
        + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        for i, row in enumerate(rows)
    )
    if not body:
        return ""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    cls_attr = f' class="{cls}"' if cls else ""
    return f"<table{cls_attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def meta_list(items: Iterable[tuple[str, str]]) -> str:
    """A definition list of (label, already-escaped HTML) pairs."""
    return '<dl class="meta">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"
