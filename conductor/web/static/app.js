// conductor's page script: follows a run by server-sent events and updates the page in
// place. The server renders everything; this only recolours graph nodes, swaps the parts
// it fetches again, appends events and tails a task's log. No library, no build step.
(function () {
  "use strict";
  var body = document.body;
  var token = new URLSearchParams(location.search).get("token");

  function url(path, params) {
    var u = new URL(path, location.origin);
    Object.keys(params || {}).forEach(function (k) {
      if (params[k] !== null && params[k] !== undefined && params[k] !== "") {
        u.searchParams.set(k, params[k]);
      }
    });
    if (token) u.searchParams.set("token", token);
    return u.toString();
  }

  function runPath(run) { return "/runs/" + encodeURIComponent(run); }

  function setState(el, state) {
    var keep = el.getAttribute("class").split(/\s+/).filter(function (c) {
      return c && c.indexOf("st-") !== 0;
    });
    keep.push("st-" + state.replace(/[^A-Za-z0-9_]/g, "_"));
    el.setAttribute("class", keep.join(" "));
    el.setAttribute("data-state", state);
  }

  // -- a run page ----------------------------------------------------------------------
  function recolour(states) {
    var nodes = document.querySelectorAll("#dag g.node");
    for (var i = 0; i < nodes.length; i++) {
      var id = nodes[i].getAttribute("data-task");
      if (!(id in states)) continue;
      if (nodes[i].getAttribute("data-state") === states[id]) continue;
      setState(nodes[i], states[id]);
      var title = nodes[i].querySelector("title");
      if (title) title.textContent = id + ": " + states[id];
    }
  }

  var refreshing = false, again = false, lastRefresh = 0;
  function refresh(run) {
    if (refreshing) { again = true; return; }
    // at most every 2 s: colours change at once (above); the table and gantt can wait
    var wait = Math.max(0, 2000 - (Date.now() - lastRefresh));
    refreshing = true;
    setTimeout(function () {
      fetch(url(runPath(run) + "/parts")).then(function (r) { return r.json(); })
        .then(function (parts) {
          document.getElementById("header").innerHTML = parts.header;
          document.getElementById("tasks").innerHTML = parts.table;
          document.getElementById("gantt").innerHTML = parts.gantt;
          recolour(parts.tasks);
        })
        .catch(function () { /* the next event refreshes again */ })
        .finally(function () {
          refreshing = false; lastRefresh = Date.now();
          if (again) { again = false; refresh(run); }
        });
    }, wait);
  }

  function clock(ts) {
    var d = new Date(ts * 1000);
    return d.toTimeString().slice(0, 8);
  }

  function describe(ev) {
    var d = ev.data || {};
    var said = d.error || d.warning || d.message || d.step || d.check || d.reason || d.line || "";
    if (!said && d.counts) said = JSON.stringify(d.counts);
    return said ? " — " + String(said).split("\n")[0] : "";
  }

  function appendEvent(list, ev) {
    var li = document.createElement("li");
    li.className = ev.level;
    var t = document.createElement("time");
    t.textContent = clock(ev.ts);
    li.appendChild(t);
    li.appendChild(document.createTextNode(ev.kind + (ev.task ? " " + ev.task : "") + describe(ev)));
    var atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    list.appendChild(li);
    while (list.childNodes.length > 2000) list.removeChild(list.firstChild);
    if (atEnd) list.scrollTop = list.scrollHeight;
  }

  function runView(run) {
    var list = document.getElementById("events");
    var source = new EventSource(url(runPath(run) + "/events"));
    source.addEventListener("conductor", function (e) {
      appendEvent(list, JSON.parse(e.data));
    });
    source.addEventListener("tasks", function (e) {
      var snap = JSON.parse(e.data);
      recolour(snap.tasks);
      body.setAttribute("data-run-state", snap.state);
      refresh(run);
    });
    source.addEventListener("end", function () {
      source.close();
      body.setAttribute("data-ended", "1");
      refresh(run);
    });
  }

  // -- a task page ---------------------------------------------------------------------
  function tailLog(run, task) {
    var pre = document.getElementById("log");
    if (!pre) return;
    var attempt = pre.getAttribute("data-attempt");
    var offset = pre.getAttribute("data-offset");
    // the latest attempt's log from `offset`; a new attempt starts the tail over
    function poll() {
      fetch(url(runPath(run) + "/tasks/" + encodeURIComponent(task) + "/log", {offset: offset}))
        .then(function (r) { return r.json(); })
        .then(function (chunk) {
          if (chunk.attempt !== undefined && String(chunk.attempt) !== String(attempt)) {
            attempt = String(chunk.attempt);
            pre.textContent = "";
            pre.setAttribute("data-attempt", attempt);
            offset = "";
            setTimeout(poll, 0);
            return;
          }
          var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          if (chunk.text) pre.appendChild(document.createTextNode(chunk.text));
          if (atEnd) pre.scrollTop = pre.scrollHeight;
          offset = chunk.offset;
          pre.setAttribute("data-offset", offset);
          pre.setAttribute("data-done", chunk.done ? "1" : "0");
          // a finished attempt may still be followed by a retry: look less often
          setTimeout(poll, chunk.done && !chunk.text ? 3000 : 1000);
        })
        .catch(function () { setTimeout(poll, 3000); });
    }
    setTimeout(poll, 1000);
  }

  function decisions(run, task) {
    var form = document.querySelector("form.decide");
    if (!form) return;
    var out = form.querySelector("output");
    function send(where, message) {
      var headers = {"Content-Type": "application/json"};
      if (token) headers["X-Conductor-Token"] = token;
      fetch(where, {method: "POST", headers: headers, body: JSON.stringify({message: message})})
        .then(function (r) { return r.text().then(function (t) { return [r.ok, t]; }); })
        .then(function (res) {
          out.textContent = res[0] ? "recorded" : res[1];
          if (res[0]) setTimeout(function () { location.reload(); }, 800);
        });
    }
    form.querySelector(".approve").addEventListener("click", function () {
      send(form.getAttribute("data-approve"), null);
    });
    form.querySelector(".reject").addEventListener("click", function () {
      send(form.getAttribute("data-reject"), form.querySelector("input").value);
    });
  }

  var view = body.getAttribute("data-view");
  if (view === "run") runView(body.getAttribute("data-run"));
  if (view === "task") {
    tailLog(body.getAttribute("data-run"), body.getAttribute("data-task"));
    decisions(body.getAttribute("data-run"), body.getAttribute("data-task"));
  }
})();
