"""The Jinja2 template of ``OUT/report.html`` (rendered with autoescape on).

Kept as a module, not a data file, so it ships in the wheel with no packaging
rule. Everything the page needs is inline: styles, one small script and the
images as ``data:`` URIs; nothing is fetched from anywhere.
"""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="echocaptions {{ version }}">
<title>{{ title }}</title>
<style>
:root { --fg: #1d2433; --muted: #5c667a; --line: #d9dee8; --bg: #f6f7fa; --card: #fff;
        --pass: #1f7a3d; --fail: #b42318; --accent: #2b59c3; --chosen: #e8f5ec; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #1d2433; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c9d1e3; }
nav { padding: 8px 28px; background: #eef1f7; border-bottom: 1px solid var(--line);
      position: sticky; top: 0; z-index: 2; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; }
main { padding: 8px 28px 40px; max-width: 1400px; }
section { margin-top: 22px; }
h2 { font-size: 19px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 8px; }
h4 { font-size: 14px; margin: 14px 0 6px; color: var(--muted); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
        padding: 10px 14px; min-width: 130px; }
.stat b { display: block; font-size: 22px; }
.stat span { color: var(--muted); }
.stat span.badge { color: #fff; font-size: 15px; padding: 2px 12px; }
.grid { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
table { border-collapse: collapse; background: var(--card); border: 1px solid var(--line); }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { background: #eef1f7; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.bar { width: 120px; }
td.bar div { background: var(--accent); height: 10px; border-radius: 2px; opacity: .75; }
tr.total td { font-weight: 600; border-top: 2px solid var(--line); }
caption { text-align: left; font-weight: 600; padding: 4px 0; white-space: nowrap; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
         font-weight: 600; color: #fff; background: var(--muted); }
.badge.pass { background: var(--pass); }
.badge.fail { background: var(--fail); }
.note { color: var(--muted); }
.warn { background: #fff4e5; border: 1px solid #f0c27a; padding: 8px 12px; border-radius: 6px; }
img.plot { max-width: 100%; background: #fff; border: 1px solid var(--line); }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
figure.item { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px;
              padding: 10px; overflow-wrap: anywhere; }
.item .head { display: flex; gap: 10px; }
.item img.thumb { max-width: 160px; max-height: 160px; background: #000; flex: none; }
.item .noimg { width: 160px; height: 120px; background: #eee; color: var(--fail); flex: none;
               display: flex; align-items: center; justify-content: center; text-align: center; }
.item .meta { font-size: 12px; color: var(--muted); }
.item .meta b { color: var(--fg); font-weight: 600; }
.chip { display: inline-block; background: #eef1f7; border-radius: 4px; padding: 0 5px; margin: 1px;
        font-size: 11px; }
ol.cands { list-style: none; padding: 0; margin: 8px 0 0; }
li.cand { border-left: 4px solid var(--line); padding: 4px 8px; margin-bottom: 6px; }
li.cand.chosen { border-left-color: var(--pass); background: var(--chosen); }
li.cand .text { display: block; font-size: 13px; }
li.cand .prov { font-size: 11px; color: var(--muted); }
.src { font-weight: 600; font-size: 12px; }
details { margin-top: 6px; }
details pre { white-space: pre-wrap; font-size: 12px; background: #f3f4f7; padding: 6px;
              max-height: 220px; overflow: auto; }
footer { padding: 16px 28px; color: var(--muted); font-size: 12px; }
</style>
</head>
<body>
<header>
  <h1>{{ title }}</h1>
  <p>{{ subtitle }}</p>
</header>
<nav>
  <a href="#sources">Sources</a><a href="#counts">Counts</a><a href="#leakage">Leakage check</a><a href="#diversity">Diversity</a>
  <a href="#rejects">Rejects</a>{% if reports %}<a href="#reports">Reports</a>{% endif %}
  <a href="#gallery">Gallery</a>
</nav>
<main>

<section id="summary">
  <div class="cards">
    <div class="stat"><b id="total-rows">{{ rows }}</b><span>rows</span></div>
    {% for split, n in splits %}<div class="stat"><b>{{ n }}</b><span>{{ split }}</span></div>{% endfor %}
    <div class="stat"><b>{{ read }}</b><span>items read</span></div>
    <div class="stat"><b>{{ rejected }}</b><span>rejected</span></div>
    <div class="stat"><b><span class="badge {{ leakage.status }}">{{ leakage.status_text }}</span></b>
      <span>leakage check</span></div>
  </div>
  {% for w in warnings %}<p class="warn">{{ w }}</p>{% endfor %}
</section>

<section id="sources">
  <h2>Sources</h2>
  <table id="sources-table">
    <tr><th>source</th><th>layout</th><th>role</th><th class="n">items read</th><th class="n">rows</th>
      <th class="n">rows without a label</th><th class="n">rejected</th></tr>
    {% for r in sources -%}
    <tr><td>{{ r.name }}</td><td>{{ r.layout }}</td><td>{{ r.role }}</td><td class="n">{{ r.read }}</td>
      <td class="n">{{ r.kept }}</td><td class="n" id="unlabelled-{{ r.name }}">{{ r.unlabelled }}</td>
      <td class="n">{{ r.rejected }}</td></tr>
    {% endfor -%}
  </table>
  {% for n in notices %}<p class="warn notice">{{ n.source }}: {{ n.message }}</p>{% endfor %}
</section>

{% macro count_table(t) -%}
<table id="count-{{ t.key }}" class="counts">
  <caption>{{ t.title }}</caption>
  <tr><th>{{ t.head }}</th><th class="n">rows</th><th class="n">share</th><th></th></tr>
  {% for r in t.rows -%}
  <tr><td>{{ r.name }}</td><td class="n">{{ r.n }}</td><td class="n">{{ r.share }}</td>
    <td class="bar"><div style="width: {{ r.width }}%"></div></td></tr>
  {% endfor -%}
  <tr class="total"><td>total</td><td class="n">{{ t.total }}</td><td class="n"></td><td></td></tr>
</table>
{%- endmacro %}

<section id="counts">
  <h2>Counts</h2>
  <p class="note">Counted from the Parquet shards under <code>data/</code>.</p>
  <div class="grid">
    {% for t in count_tables %}{{ count_table(t) }}{% endfor %}
  </div>
  <h3>Split &times; organ</h3>
  <table id="count-split-organ" class="cross">
    <tr><th>split</th>{% for c in cross.columns %}<th class="n">{{ c }}</th>{% endfor %}<th class="n">total</th></tr>
    {% for r in cross.rows -%}
    <tr><td>{{ r.name }}</td>{% for v in r.cells %}<td class="n">{{ v }}</td>{% endfor %}<td class="n">{{ r.total }}</td></tr>
    {% endfor -%}
    <tr class="total"><td>total</td>{% for v in cross.totals %}<td class="n">{{ v }}</td>{% endfor %}<td class="n">{{ cross.total }}</td></tr>
  </table>
  <h3>Label by split</h3>
  <table id="count-label-split" class="cross">
    <tr><th>organ / label</th>{% for c in label_split.columns %}<th class="n">{{ c }}</th>{% endfor %}<th class="n">total</th></tr>
    {% for r in label_split.rows -%}
    <tr><td>{{ r.name }}</td>{% for v in r.cells %}<td class="n">{{ v }}</td>{% endfor %}<td class="n">{{ r.total }}</td></tr>
    {% endfor -%}
  </table>
  {% if plots.split_organ %}
  <h3>Rows per organ and split</h3>
  <img class="plot" alt="rows per organ and split" src="{{ plots.split_organ }}">
  {% endif %}
</section>

<section id="leakage" data-leakage="{{ leakage.status }}">
  <h2>Leakage check <span class="badge {{ leakage.status }}">{{ leakage.status_text }}</span></h2>
  {% if leakage.rows %}
  <table id="leakage-table">
    <tr><th>check</th><th class="n">value</th><th>result</th></tr>
    {% for r in leakage.rows -%}
    <tr><td>{{ r.label }}</td><td class="n" id="leak-{{ r.key }}">{{ r.value }}</td>
      <td>{% if r.status %}<span class="badge {{ r.status }}">{{ r.status }}</span>{% endif %}</td></tr>
    {% endfor -%}
  </table>
  <p class="note">Across-split figures must be 0: no patient, identical image or near-duplicate
    cluster may appear in more than one split.</p>
  {% else %}
  <p class="warn">stats.json records no leakage check.</p>
  {% endif %}
</section>

{% macro summary(t) -%}
<table id="diversity-{{ t.key }}" class="diversity">
  <caption>{{ t.title }}</caption>
  <tr>{% for h in t.head %}<th{% if not loop.first %} class="n"{% endif %}>{{ h }}</th>{% endfor %}</tr>
  {% for r in t.rows -%}
  <tr>{% for v in r %}<td{% if not loop.first %} class="n"{% endif %}>{{ v }}</td>{% endfor %}</tr>
  {% endfor -%}
</table>
{%- endmacro %}

<section id="diversity">
  <h2>Caption diversity and findings fidelity</h2>
  {% if diversity.main %}
  <p class="note">From <code>diversity.json</code>. Strategies compare caption policies over the same rows;
    caption sources group the chosen captions.</p>
  {% for t in diversity.main %}{{ summary(t) }}<br>{% endfor %}
  {% if diversity.more %}
  <details><summary>More groupings ({{ diversity.more | map(attribute='title') | join(', ') }})</summary>
    {% for t in diversity.more %}{{ summary(t) }}<br>{% endfor %}
  </details>
  {% endif %}
  {% else %}
  <p class="warn">This build has no diversity.json.</p>
  {% endif %}
  <div class="grid">
    {% if plots.strategy %}<img class="plot" alt="MTLD and findings fidelity per strategy" src="{{ plots.strategy }}">{% endif %}
    {% if plots.lengths %}<img class="plot" alt="caption length per caption source" src="{{ plots.lengths }}">{% endif %}
  </div>
</section>

<section id="rejects">
  <h2>Rejects by reason</h2>
  <p class="note">{{ rejects.total }} rejected items in <code>rejects.jsonl</code>{% if rejects.stats_total is not none %}
    (stats.json: {{ rejects.stats_total }}){% endif %}; reasons grouped with file-specific parts left out.</p>
  {% if rejects.rows %}
  <table id="rejects-table">
    <tr><th>stage</th><th>reason</th><th>sources</th><th class="n">items</th><th>example</th></tr>
    {% for r in rejects.rows -%}
    <tr><td>{{ r.stage }}</td><td>{{ r.reason }}</td><td>{{ r.sources }}</td><td class="n">{{ r.n }}</td>
      <td><code>{{ r.example_path }}</code><br><span class="note">{{ r.example_reason }}</span></td></tr>
    {% endfor -%}
    <tr class="total"><td></td><td>total</td><td></td><td class="n">{{ rejects.total }}</td><td></td></tr>
  </table>
  {% endif %}
  {% if rejects.problem %}<p class="warn">{{ rejects.problem }}</p>{% endif %}
</section>

{% if reports %}
<section id="reports">
  <h2>Reports</h2>
  <div class="grid">
    {% for t in reports %}
    <table id="reports-{{ t.key }}"><caption>{{ t.title }}</caption>
      {% for k, v in t.rows %}<tr><td>{{ k }}</td><td class="n">{{ v }}</td></tr>{% endfor %}
    </table>
    {% endfor %}
  </div>
</section>
{% endif %}

<section id="gallery">
  <h2>Gallery</h2>
  <p class="note">Up to {{ per_class }} rows per organ and label, the same rows on every run (those whose
    id hashes lowest). Every caption candidate is listed with its provenance; the chosen one is
    marked. Shown: <b id="gallery-count">{{ gallery_count }}</b> images.</p>
  {% for organ in gallery %}
  <h3 id="gallery-{{ organ.name }}">{{ organ.name }}</h3>
  {% for group in organ.labels %}
  <h4>{{ organ.name }} / {{ group.label }} <span class="note">({{ group.rows | length }} of {{ group.total }})</span></h4>
  <div class="gallery">
    {% for it in group.rows %}
    <figure class="item" data-id="{{ it.id }}" data-organ="{{ organ.name }}" data-label="{{ group.label }}">
      <div class="head">
        {% if it.thumb %}<img class="thumb" src="{{ it.thumb }}" width="{{ it.tw }}" height="{{ it.th }}" alt="{{ it.id }}">
        {% else %}<div class="noimg">{{ it.thumb_error }}</div>{% endif %}
        <div class="meta">
          <div><b>{{ it.id }}</b></div>
          <div>{{ it.dataset }} &middot; {{ it.split }} &middot; {{ it.width }}&times;{{ it.height }}</div>
          <div>{{ it.source_path }}{% if it.frame is not none %} (frame {{ it.frame }}){% endif %}</div>
          {% if it.patient_id %}<div>patient {{ it.patient_id }}</div>{% endif %}
          {% if it.view %}<div>view {{ it.view }}</div>{% endif %}
          <div>policy <b>{{ it.policy }}</b>; chosen <b>{{ it.chosen }}</b></div>
          {% if it.fallback %}<div class="fallback">fallback: {{ it.fallback }}</div>{% endif %}
          {% if it.flags %}<div>flags: {{ it.flags }}</div>{% endif %}
          {% for k, v in it.findings %}<span class="chip">{{ k }}={{ v }}</span>{% endfor %}
        </div>
      </div>
      <ol class="cands">
        {% for c in it.candidates %}
        <li class="cand{% if c.chosen %} chosen{% endif %}" data-source="{{ c.source }}">
          <span class="src">{{ c.source }}</span>{% if c.chosen %} <span class="badge pass">chosen</span>{% endif %}
          <span class="text">{{ c.text }}</span>
          {% if c.prov %}<span class="prov">{{ c.prov }}</span>{% endif %}
        </li>
        {% endfor %}
      </ol>
      {% if it.report %}<details><summary>report{% if it.report_language %} ({{ it.report_language }}){% endif %}</summary><pre>{{ it.report }}</pre></details>{% endif %}
    </figure>
    {% endfor %}
  </div>
  {% endfor %}
  {% endfor %}
</section>
</main>
<footer>echocaptions {{ version }} &middot; {{ folder_name }}</footer>
<script>
window.addEventListener("load", function () {
  var ok = function (img) { return img.complete && img.naturalWidth > 0; };
  var thumbs = Array.prototype.slice.call(document.querySelectorAll("img.thumb"));
  var plots = Array.prototype.slice.call(document.querySelectorAll("img.plot"));
  document.body.dataset.imagesTotal = thumbs.length;
  document.body.dataset.imagesLoaded = thumbs.filter(ok).length;
  document.body.dataset.plotsLoaded = plots.filter(ok).length;
  if (thumbs.length) {
    var r = thumbs[0].getBoundingClientRect();
    document.body.dataset.firstThumb = [r.left + window.scrollX, r.top + window.scrollY,
                                        r.width, r.height].map(Math.round).join(",");
  }
});
</script>
</body>
</html>
"""
