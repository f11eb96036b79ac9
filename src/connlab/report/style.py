"""The report pages' one style sheet and their inline self-check script (no network, no files)."""

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-top:1px solid #ddd;padding-top:1em;margin-top:2em}
.claim{font-style:italic;color:#444}
.rule{font-size:.92em;color:#333;border-left:3px solid #ccc;padding-left:.6em}
.verdict{padding:.5em .8em;border-radius:6px;margin:.8em 0}
.supported{background:#e6f4ea;border-left:5px solid #1e8e3e}
.partly{background:#fef7e0;border-left:5px solid #f9ab00}
.not{background:#fce8e6;border-left:5px solid #d93025}
.unknown{background:#f1f3f4;border-left:5px solid #9aa0a6}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em} caption{text-align:left;color:#555;padding:.2em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right} td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#666;font-size:.85em}
.small{color:#666;font-size:.85em} table.summary td,table.summary th{text-align:left;vertical-align:top}
.scroll{max-width:100%;overflow-x:auto} body{overflow-wrap:break-word}
.sentence{margin:.2em 0;font-size:1.05em} details{margin:.3em 0 .1em} summary{cursor:pointer;color:#444}
details ul{margin:.3em 0;padding-left:1.2em} details li{margin:.2em 0}
figcaption .file{color:#999;font-size:.9em} pre{white-space:pre-wrap}
"""

# The page's only script: after load it records, inside the page, how many images decoded and
# what was logged as an error, so a headless browser's DOM dump can be checked.  No network.
SELF_CHECK = """
(function(){var errors=[];var orig=console.error;
console.error=function(){errors.push(Array.prototype.join.call(arguments,' '));return orig.apply(console,arguments);};
window.addEventListener('error',function(e){errors.push('error: '+(e.message||(e.target&&(e.target.src||e.target.href))||'?'));},true);
window.addEventListener('load',function(){var imgs=Array.prototype.slice.call(document.images);
var bad=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0);}).map(function(i){return i.alt||'?';});
var res=performance.getEntriesByType('resource').map(function(r){return r.name;})
.filter(function(u){return u.indexOf('data:')!==0;});
var el=document.getElementById('self-check');
el.textContent=JSON.stringify({images:imgs.length,not_loaded:bad,errors:errors,requests:res});
document.body.setAttribute('data-images-ok',String(bad.length===0&&imgs.length>0));});})();
"""
