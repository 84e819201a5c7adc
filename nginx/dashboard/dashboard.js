/*
 * mailpipe dashboard: reads the read API and /metrics every 5 s and draws them.
 *
 * Sources (same origin, Authorization: Bearer <key>):
 *   GET /v3/stats?start_date=<today-6>&end_date=<today>&aggregated_by=day   funnel, rates
 *   GET /mailpipe/v1/events/per_minute?minutes=60                           the chart
 *   GET /metrics (Prometheus text)        consumer lag, dead letters, processes up
 *   GET /v3/messages?query=status="failed"&limit=10, /v3/messages/{id}     failed sends
 *
 * The key: #key=... in the URL fragment (kiosks, tests; never reaches the server or its
 * logs), else the one saved from the form in localStorage. Every panel keeps its last
 * good data and shows its own error ("403: the API key lacks stats.read"). All text goes
 * in with textContent: nothing the API answers is parsed as HTML.
 */
(function () {
  "use strict";

  var REFRESH_MS = 5000;
  var STORAGE_KEY = "mailpipe.dashboard.key";
  var SVG_NS = "http://www.w3.org/2000/svg";

  // the chart's colours, in stacking order (bottom first); same as the .sw-* classes
  var EVENT_COLORS = [
    ["processed", "#8c8c8c"], ["delivered", "#1b9e4b"], ["open", "#2166ac"],
    ["click", "#7b3294"], ["deferred", "#edc948"], ["bounce", "#d7301f"],
    ["dropped", "#f28e2b"], ["spamreport", "#67000d"], ["unsubscribe", "#9c755f"],
    ["group_unsubscribe", "#c49c82"], ["group_resubscribe", "#76b7b2"], ["other", "#d0d0d0"]
  ];

  var FUNNEL = ["requests", "processed", "delivered", "unique_opens", "unique_clicks",
                "bounces", "spam_reports"];

  var keySource = "";  // "url", "saved" or ""
  var apiKey = "";
  var refreshes = 0;
  var timer = null;

  function $(id) { return document.getElementById(id); }

  // ---------------------------------------------------------------------------
  // the key

  function keyFromFragment() {
    var h = window.location.hash.replace(/^#/, "");
    var parts = h.split("&");
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].split("=");
      if (kv[0] === "key" && kv.length >= 2) {
        try {
          return decodeURIComponent(kv.slice(1).join("="));
        } catch (e) {
          return "";
        }
      }
    }
    return "";
  }

  function loadKey() {
    var k = keyFromFragment();
    if (k) {
      apiKey = k;
      keySource = "url";
    } else {
      try {
        apiKey = window.localStorage.getItem(STORAGE_KEY) || "";
      } catch (e) {
        apiKey = "";
      }
      keySource = apiKey ? "saved" : "";
    }
    $("key-source").textContent =
      keySource === "url" ? "key from the URL fragment" :
      keySource === "saved" ? "key saved in this browser" : "no key yet";
  }

  function setupForm() {
    $("key-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var v = $("key-input").value.trim();
      if (!v)
        return;
      try {
        window.localStorage.setItem(STORAGE_KEY, v);
      } catch (e) {
        // storage refused (private mode): keep it for this page only
      }
      $("key-input").value = "";
      if (keyFromFragment())
        history.replaceState(null, "", window.location.pathname);
      loadKey();
      if (!apiKey) {  // not stored: use it anyway
        apiKey = v;
        keySource = "page";
      }
      refreshNow();
    });
    $("key-forget").addEventListener("click", function () {
      try {
        window.localStorage.removeItem(STORAGE_KEY);
      } catch (e) {
        // nothing stored
      }
      if (keyFromFragment())
        history.replaceState(null, "", window.location.pathname);
      loadKey();
      refreshNow();
    });
    window.addEventListener("hashchange", function () {
      loadKey();
      refreshNow();
    });
  }

  // ---------------------------------------------------------------------------
  // HTTP

  function ApiError(status, text, scope) {
    this.status = status;
    this.message = describe(status, text, scope);
  }

  function describe(status, text, scope) {
    if (status === 0)
      return "network error: " + text;
    if (status === 401)
      return "401: the API key is missing or not valid" + (text ? " (" + text + ")" : "");
    if (status === 403)
      return "403: the API key lacks " + scope;
    return status + ": " + (text || "error");
  }

  // The first error message of a mailpipe / SendGrid error body, or "".
  function errorText(body) {
    try {
      var j = JSON.parse(body);
      if (j && j.errors && j.errors.length && typeof j.errors[0].message === "string")
        return j.errors[0].message;
    } catch (e) {
      // not JSON
    }
    return "";
  }

  // GET path; resolves with the body text, rejects with an ApiError.
  function get(path, scope) {
    if (!apiKey)
      return Promise.reject(new ApiError(401, "enter an API key above", scope));
    return fetch(path, {
      method: "GET",
      headers: {"Authorization": "Bearer " + apiKey, "Accept": "application/json, text/plain"},
      cache: "no-store",
      credentials: "omit",
      redirect: "error"
    }).then(function (resp) {
      return resp.text().then(function (body) {
        if (!resp.ok)
          throw new ApiError(resp.status, errorText(body), scope);
        return body;
      });
    }, function (e) {
      throw new ApiError(0, String(e && e.message || e), scope);
    });
  }

  function getJSON(path, scope) {
    return get(path, scope).then(function (body) {
      try {
        return JSON.parse(body);
      } catch (e) {
        throw new ApiError(502, "the answer is not JSON", scope);
      }
    });
  }

  // ---------------------------------------------------------------------------
  // panels

  function panelOk(id) {
    var p = $(id);
    p.dataset.state = "ok";
    var e = p.querySelector(".panel-error");
    e.hidden = true;
    e.textContent = "";
  }

  function panelError(id, err) {
    var p = $(id);
    p.dataset.state = "error";
    var e = p.querySelector(".panel-error");
    e.textContent = err && err.message ? err.message : String(err);
    e.hidden = false;
  }

  function isoDay(d) {
    return d.toISOString().slice(0, 10);
  }

  // A tile's number; data-len lets the style shrink long ones to fit the tile.
  function setNum(id, v) {
    var el = $(id), s = String(v);
    el.textContent = s;
    el.dataset.value = s;
    el.dataset.len = String(Math.min(s.length, 8));
  }

  function rate(num, den) {
    if (!den)
      return "–";
    return (100 * num / den).toFixed(2) + "%";
  }

  function showFunnel(prefix, m) {
    for (var i = 0; i < FUNNEL.length; i++)
      setNum(prefix + "-" + FUNNEL[i], m[FUNNEL[i]] || 0);
    setNum(prefix + "-bounce-rate", rate(m.bounces || 0, m.requests || 0));
    setNum(prefix + "-complaint-rate", rate(m.spam_reports || 0, m.delivered || 0));
  }

  function refreshFunnel() {
    var now = new Date();
    var today = isoDay(now);
    var first = isoDay(new Date(now.getTime() - 6 * 86400000));
    var path = "/v3/stats?start_date=" + first + "&end_date=" + today + "&aggregated_by=day";
    return getJSON(path, "stats.read").then(function (days) {
      var week = {}, day = {};
      for (var i = 0; i < days.length; i++) {
        var m = days[i].stats && days[i].stats[0] ? days[i].stats[0].metrics : {};
        for (var k in m) {
          if (Object.prototype.hasOwnProperty.call(m, k))
            week[k] = (week[k] || 0) + m[k];
        }
        if (days[i].date === today)
          day = m;
      }
      $("today-date").textContent = today;
      $("week-dates").textContent = first + " to " + today;
      showFunnel("today", day);
      showFunnel("week", week);
      panelOk("panel-funnel");
    }, function (e) {
      panelError("panel-funnel", e);
    });
  }

  function svg(name, attrs, parent) {
    var el = document.createElementNS(SVG_NS, name);
    for (var k in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, k))
        el.setAttribute(k, attrs[k]);
    }
    if (parent)
      parent.appendChild(el);
    return el;
  }

  function niceMax(v) {
    if (v <= 5)
      return 5;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * p >= v)
        return steps[i] * p;
    }
    return 10 * p;
  }

  function drawMinutes(minutes) {
    var W = 1300, H = 300, L = 56, R = 12, T = 12, B = 34;
    var names = EVENT_COLORS.map(function (c) { return c[0]; });
    var colors = {};
    EVENT_COLORS.forEach(function (c) { colors[c[0]] = c[1]; });
    var totals = {}, max = 0, all = 0;
    minutes.forEach(function (m) {
      var sum = 0;
      for (var k in m.counts) {
        if (!Object.prototype.hasOwnProperty.call(m.counts, k))
          continue;
        if (names.indexOf(k) < 0) {  // a name this page does not know: stack it last
          names.push(k);
          colors[k] = "#d0d0d0";
        }
        totals[k] = (totals[k] || 0) + m.counts[k];
        sum += m.counts[k];
      }
      all += sum;
      if (sum > max)
        max = sum;
    });
    var top = niceMax(max);
    var root = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img",
                           "aria-label": "events per minute by type"});
    var plotW = W - L - R, plotH = H - T - B;
    for (var g = 0; g <= 4; g++) {
      var y = T + plotH - plotH * g / 4;
      svg("line", {x1: L, x2: W - R, y1: y, y2: y, "class": "grid"}, root);
      var lab = svg("text", {x: L - 6, y: y + 4, "text-anchor": "end", "class": "axis"}, root);
      lab.textContent = String(Math.round(top * g / 4 * 100) / 100);
    }
    var n = minutes.length || 1, slot = plotW / n, bw = Math.max(1, slot * 0.8);
    minutes.forEach(function (m, i) {
      var x = L + i * slot + (slot - bw) / 2, base = T + plotH;
      var hhmm = m.minute.slice(11, 16);
      names.forEach(function (name) {
        var c = m.counts[name];
        if (!c)
          return;
        var h = plotH * c / top;
        base -= h;
        var r = svg("rect", {x: x.toFixed(1), y: base.toFixed(1), width: bw.toFixed(1),
                             height: h.toFixed(1), fill: colors[name],
                             "data-minute": m.minute, "data-event": name, "data-count": c},
                    root);
        svg("title", {}, r).textContent = hhmm + " " + name + ": " + c;
      });
      if (i % 10 === 0 || i === minutes.length - 1) {
        var t = svg("text", {x: (L + i * slot + slot / 2).toFixed(1), y: H - 12,
                             "text-anchor": "middle", "class": "axis"}, root);
        t.textContent = hhmm;
      }
    });
    svg("line", {x1: L, x2: W - R, y1: T + plotH, y2: T + plotH, stroke: "#111"}, root);
    var chart = $("minutes-chart");
    chart.textContent = "";
    chart.appendChild(root);
    chart.dataset.total = String(all);

    var legend = $("minutes-legend");
    legend.textContent = "";
    names.forEach(function (name) {
      if (!totals[name])
        return;
      var li = document.createElement("li");
      li.dataset.event = name;
      li.dataset.count = String(totals[name]);
      var sw = document.createElement("span");
      sw.className = "swatch sw-" + (colors[name] === "#d0d0d0" ? "other" : name);
      var label = document.createElement("span");
      label.textContent = name;
      var count = document.createElement("span");
      count.className = "count";
      count.textContent = String(totals[name]);
      li.appendChild(sw);
      li.appendChild(label);
      li.appendChild(count);
      legend.appendChild(li);
    });
    if (!all) {
      var none = document.createElement("li");
      none.textContent = "no events in the last 60 minutes";
      legend.appendChild(none);
    }
  }

  function refreshMinutes() {
    return getJSON("/mailpipe/v1/events/per_minute?minutes=60", "stats.read").then(function (j) {
      drawMinutes(j.minutes || []);
      panelOk("panel-minutes");
    }, function (e) {
      panelError("panel-minutes", e);
    });
  }

  // Prometheus text format 0.0.4: [{name, labels: {...}, value}] (comments skipped).
  function parseMetrics(text) {
    var out = [];
    var lines = text.split("\n");
    var re = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?\s*$/;
    var labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/g;
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i];
      if (!line || line.charAt(0) === "#")
        continue;
      var m = re.exec(line);
      if (!m)
        continue;
      var labels = {};
      if (m[3]) {
        var lm;
        labelRe.lastIndex = 0;
        while ((lm = labelRe.exec(m[3])) !== null) {
          labels[lm[1]] = lm[2].replace(/\\(.)/g, function (all, c) {
            return c === "n" ? "\n" : c;  // \\, \" and \n, in one pass
          });
        }
      }
      out.push({name: m[1], labels: labels, value: parseFloat(m[4])});
    }
    return out;
  }

  function sumBy(samples, name, label) {
    var total = 0, by = {}, seen = false;
    samples.forEach(function (s) {
      if (s.name !== name || isNaN(s.value))
        return;
      seen = true;
      total += s.value;
      var k = label ? s.labels[label] || "?" : "";
      by[k] = (by[k] || 0) + s.value;
    });
    return {seen: seen, total: total, by: by};
  }

  function detail(by) {
    return Object.keys(by).sort().map(function (k) { return k + " " + by[k]; }).join(", ");
  }

  function refreshPipeline() {
    return get("/metrics", "metrics.read").then(function (text) {
      var samples = parseMetrics(text);
      var lag = sumBy(samples, "mailpipe_consumer_lag", "group");
      var dead = sumBy(samples, "mailpipe_dead_letters_total", "topic");
      var up = samples.filter(function (s) { return s.name === "mailpipe_up"; });
      setNum("consumer-lag", lag.seen ? lag.total : "–");
      $("consumer-lag-detail").textContent = lag.seen ? detail(lag.by) : "not reported";
      // a counter nobody incremented yet has no sample: with the sink or ingest
      // reporting, no sample means none
      var deadReporters = up.some(function (s) {
        return s.value === 1 && (s.labels.process === "sink" || s.labels.process === "ingest");
      });
      // rows of dead_letters neither replayed nor discarded, read by query at each
      // scrape; the counters (since the processes started) only when that is missing
      var pending = sumBy(samples, "mailpipe_dead_letters_pending", "topic");
      var waiting = {};
      Object.keys(pending.by).forEach(function (k) {
        if (pending.by[k] > 0)
          waiting[k] = pending.by[k];
      });
      if (pending.seen) {
        setNum("dead-letters", pending.total);
        $("dead-letters-detail").textContent = pending.total > 0 ?
          detail(waiting) + " (pending: mailpipectl dlq list --pending)" : "none pending";
      } else {
        setNum("dead-letters", dead.seen ? dead.total : deadReporters ? 0 : "–");
        $("dead-letters-detail").textContent =
          dead.seen ? detail(dead.by) + " (since the processes started)" :
          deadReporters ? "none since the processes started" : "not reported";
      }
      if (up.length) {
        var n = up.filter(function (s) { return s.value === 1; }).length;
        setNum("processes-up", n + "/" + up.length);
        var down = up.filter(function (s) { return s.value !== 1; }).map(function (s) {
          return (s.labels.process || "?") + "@" + (s.labels.instance || "?");
        });
        $("processes-detail").textContent = down.length ? "down: " + down.join(", ") :
          up.map(function (s) { return s.labels.process || "?"; }).sort().join(", ");
      } else {
        setNum("processes-up", "–");
        $("processes-detail").textContent = "not reported";
      }
      panelOk("panel-pipeline");
    }, function (e) {
      if (e.status === 404 || e.status === 502 || e.status === 503)
        e.message = "metrics unavailable (" + e.message + ")";
      panelError("panel-pipeline", e);
    });
  }

  function td(text, cls) {
    var el = document.createElement("td");
    el.textContent = text;
    if (cls)
      el.className = cls;
    return el;
  }

  // When a mailpipe message id (a ULID: 48 bits of milliseconds first, Crockford base32)
  // was made, as "YYYY-MM-DD HH:MM:SS"; "" when id is not a ULID.
  function ulidTime(id) {
    var digits = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    if (typeof id !== "string" || !/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/.test(id))
      return "";
    var ms = 0;
    for (var i = 0; i < 10; i++)
      ms = ms * 32 + digits.indexOf(id.charAt(i));
    return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
  }

  function refreshFailed() {
    var path = "/v3/messages?query=" + encodeURIComponent("status=\"failed\"") + "&limit=10";
    return getJSON(path, "stats.read").then(function (j) {
      var msgs = j.messages || [];
      // The Activity API has no failure reason today; show one if it ever answers it.
      var withError = msgs.some(function (m) { return typeof m.last_error === "string"; });
      var body = $("failed-rows");
      body.textContent = "";
      msgs.forEach(function (m) {
        var tr = document.createElement("tr");
        tr.dataset.msgId = m.msg_id;
        tr.appendChild(td(ulidTime(m.msg_id) || "–", "accepted"));
        tr.appendChild(td(m.last_event_time ? m.last_event_time.replace("T", " ")
                                             .replace("Z", "") : "–", "last-event"));
        tr.appendChild(td(m.msg_id, "msgid"));
        tr.appendChild(td(m.to_email || "–"));
        tr.appendChild(td(m.subject || "–"));
        tr.appendChild(td(m.status || "–", "status"));
        if (withError)
          tr.appendChild(td(m.last_error || "–", "error"));
        body.appendChild(tr);
      });
      $("failed-error-col").hidden = !withError;
      $("failed-empty").hidden = msgs.length > 0;
      panelOk("panel-failed");
    }, function (e) {
      panelError("panel-failed", e);
    });
  }

  // ---------------------------------------------------------------------------
  // the loop

  function refresh() {
    timer = null;
    return Promise.all([refreshFunnel(), refreshMinutes(), refreshPipeline(), refreshFailed()])
      .then(function () {
        var now = new Date();
        $("last-update").textContent = now.toISOString().slice(11, 19) + " UTC";
        $("last-update").setAttribute("datetime", now.toISOString());
        var errors = document.querySelectorAll('.panel[data-state="error"]').length;
        document.body.dataset.state = errors ? "error" : "ok";
        refreshes++;
        document.body.dataset.refreshes = String(refreshes);
      })
      .catch(function (e) {
        document.body.dataset.state = "error";
        if (window.console)
          console.error(e);
      })
      .then(function () {
        if (timer === null)
          timer = window.setTimeout(refresh, REFRESH_MS);
      });
  }

  function refreshNow() {
    if (timer !== null) {
      window.clearTimeout(timer);
      timer = null;
    }
    refresh();
  }

  document.addEventListener("DOMContentLoaded", function () {
    loadKey();
    setupForm();
    refresh();
  });
})();
