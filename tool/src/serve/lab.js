// The live lab, added to each page only by `cargo run --release -- serve`:
// reloads the page when the book is rebuilt, and on a chapter's page shows a
// control that runs the chapter on this machine and follows the run.
(function () {
  "use strict";
  const token = document.currentScript.dataset.token;
  const page = decodeURIComponent(location.pathname.split("/").pop() || "index.html");
  let generation = null;
  let reloading = false;
  let startedHere = null; // the id of a run this page started
  let shownCompare = null;
  let panel = null;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Lab-Token": token },
      body: JSON.stringify(body),
    });
  }

  function makePanel(chapter, fullSeconds) {
    const style = el("style");
    style.textContent =
      ".evt-lab{border:1px solid var(--quote-border,#ccc);background:var(--quote-bg,#f6f6f6);" +
      "padding:.6em 1em;margin:1em 0;border-radius:4px;font-size:.9em}" +
      ".evt-lab button{margin-right:.5em}.evt-lab progress{width:100%}" +
      ".evt-lab pre{max-height:10em;overflow:auto;font-size:.8em;margin:.4em 0}" +
      ".evt-lab table{font-size:.85em}.evt-lab .off td:last-child{color:#a00;font-weight:bold}";
    document.head.appendChild(style);
    const box = el("div", { class: "evt-lab", id: "evt-lab" });
    box.appendChild(el("strong", {}, "Run this chapter on my machine"));
    const buttons = el("div");
    const quick = el("button", { type: "button", "data-mode": "quick" }, "Quick run (delays ÷ 10)");
    const about = fullSeconds ? `, ${fullSeconds < 90 ? Math.round(fullSeconds) + " s" : (fullSeconds / 60).toFixed(1) + " min"} on the book's machine` : "";
    const full = el("button", { type: "button", "data-mode": "full" }, `Full run (the book's numbers${about})`);
    const cancel = el("button", { type: "button", hidden: "" }, "Cancel");
    [quick, full, cancel].forEach((b) => buttons.appendChild(b));
    box.appendChild(buttons);
    const progress = el("progress", { hidden: "" });
    const line = el("div", { class: "evt-lab-status" });
    const log = el("pre", { hidden: "" });
    const compare = el("div", { class: "evt-lab-compare" });
    [progress, line, log, compare].forEach((n) => box.appendChild(n));
    [quick, full].forEach((button) =>
      button.addEventListener("click", async () => {
        line.textContent = "starting…";
        const answer = await post("/__lab/run", { chapter, mode: button.dataset.mode });
        if (answer.ok) {
          startedHere = (await answer.json()).id;
        } else {
          line.textContent = await answer.text();
        }
        poll();
      })
    );
    cancel.addEventListener("click", () => post("/__lab/cancel", { token }).then(poll));
    const heading = document.querySelector("main h1");
    if (heading) heading.after(box);
    else document.querySelector("main")?.prepend(box);
    return { chapter, quick, full, cancel, progress, line, log, compare };
  }

  function render(run) {
    const p = panel;
    const mine = run && run.chapter === p.chapter;
    const running = run && run.state === "running";
    p.quick.disabled = p.full.disabled = !!running;
    p.cancel.hidden = !(running && mine);
    p.progress.hidden = !(running && mine);
    p.log.hidden = !mine;
    if (!run) return;
    if (!mine) {
      p.line.textContent = running ? `Chapter ${run.chapter} is running (one run at a time).` : "";
      return;
    }
    const seconds = Math.round(run.elapsed_s);
    if (running) {
      p.progress.max = Math.max(run.steps, 1);
      p.progress.value = Math.max(run.step - 1, 0);
      p.line.textContent = `${run.mode} run, experiment ${run.step} of ${run.steps || "?"}: ${run.measuring} (${seconds} s)`;
    } else if (run.state === "done") {
      p.line.textContent = `${run.mode} run done in ${seconds} s: the tables below are this machine's.`;
    } else {
      p.line.textContent = `${run.mode} run ${run.state} after ${seconds} s: ${run.error || ""}`;
    }
    p.log.textContent = run.log.join("\n");
    if (run.state === "done" && shownCompare !== run.id) {
      shownCompare = run.id;
      showCompare(run.chapter);
    }
  }

  async function showCompare(chapter) {
    const answer = await fetch(`/__lab/compare?chapter=${chapter}`);
    if (!answer.ok) return;
    const c = await answer.json();
    const box = panel.compare;
    box.textContent = "";
    box.appendChild(el("p", {}, `Yours: ${c.yours}. The book's: ${c.book || "no record"}.` +
      (c.quick ? " A quick run divides the chapter's long delays by ten, so its figures are not judged against the book's full run; a row near 1 is one whose short delay a quick run keeps." : "") +
      (c.tally ? ` Judged against the book's: ${c.tally}.` : "")));
    const table = el("table");
    const head = el("tr");
    ["experiment", "figure", "yours", "the book's", "yours ÷ book's", "set by", "should land in", "verdict"].forEach((h) => head.appendChild(el("th", {}, h)));
    table.appendChild(head);
    const fmt = (v, unit) => (v === null || v === undefined ? "—" : `${v >= 100 ? Math.round(v).toLocaleString("en") : v.toPrecision(3)} ${unit}`);
    c.rows.forEach((r) => {
      const tr = el("tr", r.verdict.startsWith("outside") ? { class: "off" } : {});
      [r.experiment, r.figure, fmt(r.yours, r.unit), fmt(r.book, r.unit),
        r.book ? (r.yours / r.book).toFixed(2) : "—", r.set_by, r.range || "—", r.reason ? `${r.verdict}: ${r.reason}` : r.verdict]
        .forEach((v) => tr.appendChild(el("td", {}, v)));
      table.appendChild(tr);
    });
    box.appendChild(table);
  }

  let polling = null;
  async function poll() {
    clearTimeout(polling);
    let s;
    try {
      s = await (await fetch("/__lab/status")).json();
    } catch (e) {
      polling = setTimeout(poll, 2000);
      return;
    }
    if (generation === null) generation = s.generation;
    if (s.generation !== generation) {
      reloading = true;
      location.reload();
      return;
    }
    const [, chapter, fullSeconds] = s.pages.find(([name]) => name === page) || [];
    if (s.lab && chapter && !panel) panel = makePanel(chapter, fullSeconds);
    if (panel) {
      render(s.run);
      if (s.build_error) panel.line.textContent = `The book did not rebuild: ${s.build_error}`;
    }
    const running = s.run && s.run.state === "running";
    polling = setTimeout(poll, running ? 500 : 1000);
  }

  // Leaving the page (not our own reload) stops a run it started.
  window.addEventListener("pagehide", () => {
    if (!reloading && startedHere !== null) {
      navigator.sendBeacon("/__lab/cancel", JSON.stringify({ token }));
    }
  });
  poll();
})();
