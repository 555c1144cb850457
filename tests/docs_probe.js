// The probe tests/test_docs.py adds at the top of a built page's <head>: it waits until
// mkdocs-material has drawn every diagram, measures the page and reports as JSON in a
// pre element (id "exegraph-probe") that `chromium --dump-dom` prints.
(() => {
  // mkdocs-material draws each diagram into a closed shadow root: keep them open to read.
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    return attach.call(this, { ...init, mode: "open" });
  };
  const visible = (el) => el.getBoundingClientRect().width > 0;
  const statusOf = (cls) => {
    for (const [pattern, status] of [
      [/\b(done)\b|\bdone\d\b/, "done"], [/\bfailed\b|\bcrit\d\b/, "failed"],
      [/\bcancelled\b|\bactive\d\b/, "cancelled"], [/\bskipped\b/, "skipped"],
    ]) if (pattern.test(cls)) return status;
    return null;
  };
  const diagram = (el) => {
    const svg = el.shadowRoot && el.shadowRoot.querySelector("svg");
    if (!svg) return { svg: false, source: el.textContent.trim().slice(0, 80) };
    const box = svg.getBoundingClientRect();
    const scale = svg.viewBox.baseVal && svg.viewBox.baseVal.width
      ? box.width / svg.viewBox.baseVal.width : 1;
    const texts = [...svg.querySelectorAll("text, .nodeLabel")].filter((t) => t.textContent.trim());
    const fills = {};
    for (const shape of svg.querySelectorAll("rect.task, g.node > rect, g.node > path")) {
      const classes = `${shape.getAttribute("class")} ${shape.parentNode.getAttribute("class")}`;
      const status = statusOf(classes);
      if (status) fills[status] = getComputedStyle(shape).fill;
    }
    return {
      svg: true,
      visible: visible(svg),
      kind: svg.getAttribute("aria-roledescription"),
      smallestText: Math.min(...texts.map((t) => parseFloat(getComputedStyle(t).fontSize) * scale)),
      ticks: [...svg.querySelectorAll(".tick text")].map((t) => t.textContent),
      fills,
    };
  };
  const midWordBreaks = (code) => {
    // Where a table's identifier wraps onto a new line between two word characters.
    const found = [];
    const text = code.textContent;
    const range = document.createRange();
    let top = null;
    let offset = 0;
    const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (let i = 0; i < node.length; i++, offset++) {
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const rect = range.getClientRects()[0];
        if (!rect) continue;
        const between = /\w/.test(text[offset - 1] || "") && /\w/.test(text[offset]);
        if (top !== null && rect.top > top + 2 && between) {
          found.push(`${text.slice(0, offset)}|${text.slice(offset)}`);
        }
        top = rect.top;
      }
    }
    return found;
  };
  const report = () => {
    const legends = [...document.querySelectorAll(".exegraph-legend")].map((legend) =>
      Object.fromEntries([...legend.querySelectorAll(".exegraph-legend__item")].map((item) => [
        item.textContent.trim(),
        getComputedStyle(item.querySelector(".exegraph-legend__swatch")).backgroundColor,
      ])));
    const out = document.createElement("pre");
    out.id = "exegraph-probe";
    out.textContent = JSON.stringify({
      unrendered: unrendered(),
      diagrams: [...document.querySelectorAll("div.mermaid")].map(diagram),
      legends,
      wideCode: [...document.querySelectorAll(".md-content pre > code")]
        .filter((code) => visible(code) && code.scrollWidth > code.clientWidth + 1)
        .map((code) => code.textContent.split("\n").reduce((a, b) => (b.length > a.length ? b : a))),
      brokenNames: [...document.querySelectorAll(".md-typeset table code")].flatMap(midWordBreaks),
      scripts: [...document.scripts].map((script) => script.src).filter(Boolean),
    });
    document.body.append(out);
  };
  // Mermaid source still shown as text (material takes the `mermaid` class off a block
  // while it loads Mermaid, and leaves it off when that fails).
  const unrendered = () => [...document.querySelectorAll("pre > code")]
    .filter((code) => /^\s*(%%\{|flowchart |gantt\b)/.test(code.textContent)).length;
  let tries = 0;
  const wait = () => (unrendered() && tries++ < 100 ? setTimeout(wait, 100) : report());
  addEventListener("load", () => setTimeout(wait, 100));
})();
