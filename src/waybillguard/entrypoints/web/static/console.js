/* waybillguard console. Vanilla JS, no external code. The session token lives in
 * sessionStorage and travels only in the Authorization header; personal data is only
 * ever sent in request bodies and rendered with textContent (never parsed as HTML). */
(function () {
  "use strict";

  var body = document.body;
  var PREFIX = body.dataset.prefix || "/console";
  var API = "/api/v1";
  var TABLE = JSON.parse(body.dataset.i18nTable || "{}");
  var HOMES = JSON.parse(body.dataset.homes || "{}");
  var SESSION_KEY = "wg.session";
  var LANG_KEY = "wg.lang";
  var SVG_NS = "http://www.w3.org/2000/svg";
  var ROLE_COLORS = {
    courier: "#2e7d32", station_clerk: "#00838f", station_manager: "#6a1b9a",
    cs_agent: "#1f6feb", security: "#c62828", admin: "#5d4037", partner: "#ef6c00",
    data_entry: "#757575"
  };

  // -- language ------------------------------------------------------------------------
  function lang() {
    var chosen = null;
    try { chosen = window.localStorage.getItem(LANG_KEY); } catch (e) { chosen = null; }
    return chosen === "en" ? "en" : "zh";
  }
  function t(key) {
    var entry = TABLE[key];
    if (!entry) { return key; }
    return entry[lang()] || entry.zh;
  }
  function applyLang() {
    document.documentElement.lang = lang() === "en" ? "en" : "zh-CN";
    document.querySelectorAll("[data-i18n]").forEach(function (el) {
      el.textContent = t(el.dataset.i18n);
    });
    document.querySelectorAll("[data-i18n-placeholder]").forEach(function (el) {
      el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder));
    });
    document.title = t(body.dataset.titleKey) + " · " + t("app.title");
    var role = document.getElementById("who-role");
    var session = getSession();
    if (role && session) { role.textContent = t("role." + session.role); }
    document.dispatchEvent(new CustomEvent("wg:lang"));
  }
  function toggleLang() {
    try { window.localStorage.setItem(LANG_KEY, lang() === "en" ? "zh" : "en"); } catch (e) { /* private mode */ }
    applyLang();
  }

  // -- session -------------------------------------------------------------------------
  function getSession() {
    try { return JSON.parse(window.sessionStorage.getItem(SESSION_KEY) || "null"); } catch (e) { return null; }
  }
  function setSession(s) { window.sessionStorage.setItem(SESSION_KEY, JSON.stringify(s)); }
  function clearSession() { window.sessionStorage.removeItem(SESSION_KEY); }
  function toLogin() { window.location.assign(PREFIX + "/"); }

  // -- messages --------------------------------------------------------------------------
  function flash(text, isError) {
    var el = document.getElementById("flash");
    if (!el) { return; }
    el.textContent = text;
    el.className = isError ? "flash error" : "flash";
    el.hidden = !text;
  }
  function fieldLabel(name) { return TABLE["field." + name] ? t("field." + name) : name; }
  /* Where a malformed request went wrong, from the API's `problems` (location and a
   * reason code; never the value sent). */
  function problemList(problems) {
    return (problems || []).slice(0, 5).map(function (p) {
      var parts = String(p.location || "").split(".");
      if (parts[0] === "body") { parts.shift(); }
      var where = parts.length ? fieldLabel(parts[0]) + (parts.length > 1 ? " #" + parts.slice(1).join(".") : "") : "";
      var why = TABLE["reason." + p.reason] ? t("reason." + p.reason) : String(p.reason || "");
      return where ? where + "：" + why : why;
    });
  }
  function problem(data, status) {
    if (data && data.error && data.error.message) {
      var err = data.error;
      var text = err.field && TABLE["field." + err.field] ? t("field." + err.field) + " · " + err.message : err.message;
      var where = problemList(err.problems);
      return where.length ? text + " — " + where.join("；") : text;
    }
    if (data && data.message) { return data.message + (data.rule ? " (" + data.rule + ")" : ""); }
    if (data && data.announcement) { return data.announcement; }
    if (data && typeof data.detail === "string") { return data.detail; }
    return t("common.load_failed") + " (" + status + ")";
  }

  // -- the API -------------------------------------------------------------------------
  function requestInit(method, payload, accept) {
    var session = getSession();
    var headers = { "Accept": accept || "application/json" };
    if (session && session.token) { headers.Authorization = "Bearer " + session.token; }
    var init = { method: method, headers: headers, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    return init;
  }
  function jsonResult(response, path) {
    return response.text().then(function (text) {
      var data = null;
      try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
      if (response.status === 401 && path.indexOf("/auth/login") < 0) {
        clearSession();
        toLogin();
      }
      return { ok: response.ok, status: response.status, data: data };
    });
  }
  function api(method, path, payload) {
    return fetch(path, requestInit(method, payload)).then(function (response) {
      return jsonResult(response, path);
    });
  }
  /* A file answered by a POST (labels). The token must stay in the header, so a plain
   * link cannot fetch it: the body is kept as a Blob and handed to the browser through
   * an object URL and an <a download>. Errors come back as JSON, like `api`. */
  function download(path, payload, accept, filename) {
    return fetch(path, requestInit("POST", payload, accept + ", application/json")).then(function (response) {
      if (!response.ok) { return jsonResult(response, path); }
      return response.blob().then(function (blob) {
        var url = URL.createObjectURL(blob);
        var link = el("a", { href: url, download: filename, hidden: "" });
        document.body.appendChild(link);
        link.click();
        document.body.removeChild(link);
        // Revoked later, not at once: the browser reads the Blob after the click returns.
        window.setTimeout(function () { URL.revokeObjectURL(url); }, 30000);
        return { ok: true, status: response.status, data: null, headers: response.headers };
      });
    });
  }
  function fail(result) { flash(problem(result.data, result.status), true); }

  // -- DOM helpers ----------------------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; }
      else if (k === "i18n") { node.dataset.i18n = attrs[k]; node.textContent = t(attrs[k]); }
      else if (k === "class") { node.className = attrs[k]; }
      else if (k === "css") { Object.assign(node.style, attrs[k]); }  // CSSOM: allowed by the CSP
      else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }
  function td(text, cls) { return el("td", { text: text === null || text === undefined ? "" : String(text), class: cls || "" }); }
  function fillTable(id, rows) {
    var tbody = document.querySelector("#" + id + " tbody");
    while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
    if (!rows.length) {
      var cols = document.querySelectorAll("#" + id + " thead th:not([hidden])").length;
      tbody.appendChild(el("tr", {}, [el("td", { class: "empty", colspan: String(cols), i18n: "common.none" })]));
      return;
    }
    rows.forEach(function (r) { tbody.appendChild(r); });
  }
  function party(p) { return p ? [p.name, p.phone, p.address].filter(Boolean).join(" · ") : ""; }
  function button(i18nKey, onClick, primary) {
    var b = el("button", { type: "button", i18n: i18nKey, class: primary ? "primary" : "" });
    b.addEventListener("click", function () { b.disabled = true; onClick(b); });
    return b;
  }

  // -- charts (inline SVG, drawn here) ----------------------------------------------------
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  /* The top of an axis with four integer ticks: 4 × a 1-2-5 step. */
  function niceMax(v) {
    var raw = Math.max(1, Math.ceil(v / 4));
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * p >= raw) { return 4 * steps[i] * p; } }
    return 40 * p;
  }
  function legend(container, series) {
    var box = el("div", { class: "legend" });
    series.forEach(function (s) {
      var item = el("span", {}, [el("i", { css: { background: s.color } }), el("span", { text: s.name })]);
      box.appendChild(item);
    });
    container.appendChild(box);
  }
  /* Vertical stacked bars: labels[i] on the x axis, series[j].values[i] stacked. */
  function stackedBars(container, labels, series, title) {
    while (container.firstChild) { container.removeChild(container.firstChild); }
    var W = 900, H = 260, L = 44, R = 10, T = 14, B = 34;
    var totals = labels.map(function (_, i) {
      return series.reduce(function (sum, s) { return sum + (s.values[i] || 0); }, 0);
    });
    var max = niceMax(Math.max.apply(null, totals.concat([0])));
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title, class: "bars" });
    root.appendChild(svg("title", {}, title));
    var plotH = H - T - B, plotW = W - L - R, slot = plotW / Math.max(labels.length, 1);
    for (var g = 0; g <= 4; g++) {
      var y = T + plotH - plotH * g / 4;
      root.appendChild(svg("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "#e3e7ef" }));
      root.appendChild(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#5d6678" }, String(Math.round(max * g / 4))));
    }
    labels.forEach(function (label, i) {
      var x = L + slot * i + slot * 0.15, w = slot * 0.7, base = T + plotH;
      series.forEach(function (s) {
        var v = s.values[i] || 0;
        if (!v) { return; }
        var h = plotH * v / max;
        base -= h;
        var bar = svg("rect", { x: x.toFixed(1), y: base.toFixed(1), width: w.toFixed(1), height: h.toFixed(1), fill: s.color, class: "bar" });
        bar.appendChild(svg("title", {}, s.name + " " + label + ": " + v));
        root.appendChild(bar);
      });
      var every = Math.ceil(labels.length / 14);
      if (i % every === 0) {
        root.appendChild(svg("text", { x: (x + w / 2).toFixed(1), y: H - 14, "text-anchor": "middle", "font-size": 11, fill: "#5d6678" }, label));
      }
    });
    root.appendChild(svg("line", { x1: L, x2: W - R, y1: T + plotH, y2: T + plotH, stroke: "#9aa3b5" }));
    container.appendChild(root);
    legend(container, series);
  }
  /* Horizontal bars of used against a limit, one row per label. */
  function usageBars(container, rows, title) {
    while (container.firstChild) { container.removeChild(container.firstChild); }
    var W = 900, rowH = 26, L = 170, R = 90, T = 8;
    var H = T * 2 + rowH * Math.max(rows.length, 1);
    var max = niceMax(Math.max.apply(null, rows.map(function (r) { return Math.max(r.used, r.limit); }).concat([1])));
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title, class: "bars" });
    root.appendChild(svg("title", {}, title));
    var plotW = W - L - R;
    rows.forEach(function (r, i) {
      var y = T + i * rowH;
      root.appendChild(svg("text", { x: L - 8, y: y + rowH * 0.62, "text-anchor": "end", "font-size": 12, fill: "#1d2330" }, r.label));
      root.appendChild(svg("rect", { x: L, y: y + 4, width: plotW, height: rowH - 10, fill: "#eef1f6" }));
      var share = r.limit ? r.used / r.limit : (r.used ? 1 : 0);
      var color = share >= 1 ? "#c62828" : share >= 0.8 ? "#b26a00" : "#1a7f37";
      var bar = svg("rect", { x: L, y: y + 4, width: (plotW * Math.min(r.used, max) / max).toFixed(1), height: rowH - 10, fill: color, class: "bar" });
      bar.appendChild(svg("title", {}, r.label + ": " + r.used + " / " + r.limit));
      root.appendChild(bar);
      var limitX = L + plotW * Math.min(r.limit, max) / max;
      root.appendChild(svg("line", { x1: limitX, x2: limitX, y1: y + 1, y2: y + rowH - 3, stroke: "#17233b", "stroke-width": 2 }));
      root.appendChild(svg("text", { x: W - R + 8, y: y + rowH * 0.62, "font-size": 12, fill: "#5d6678" }, r.used + " / " + r.limit));
    });
    container.appendChild(root);
  }

  // -- shell -------------------------------------------------------------------------------
  function requireSession() {
    var session = getSession();
    if (!session || !session.token) { toLogin(); return null; }
    var home = HOMES[session.role];
    if (home && home !== body.dataset.page) {
      window.location.replace(PREFIX + "/" + home);
      return null;
    }
    var who = document.getElementById("who");
    document.getElementById("who-name").textContent = session.username;
    document.getElementById("who-role").textContent = t("role." + session.role);
    who.hidden = false;
    document.getElementById("logout").hidden = false;
    return session;
  }
  function logout() {
    api("POST", API + "/auth/logout").then(function () { clearSession(); toLogin(); });
  }

  // -- login -------------------------------------------------------------------------------
  function loginPage() {
    var form = document.getElementById("login-form");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var payload = {
        username: document.getElementById("login-username").value.trim(),
        password: document.getElementById("login-password").value
      };
      var totp = document.getElementById("login-totp").value.trim();
      var device = document.getElementById("login-device").value.trim();
      if (totp) { payload.totp = totp; }
      if (device) { payload.device = device; }
      document.getElementById("login-submit").disabled = true;
      api("POST", API + "/auth/login", payload).then(function (r) {
        document.getElementById("login-submit").disabled = false;
        document.getElementById("login-password").value = "";
        document.getElementById("login-totp").value = "";
        if (!r.ok) { fail(r); return; }
        var home = HOMES[r.data.role];
        if (!home) { flash(t("login.unsupported"), true); return; }
        setSession({ token: r.data.token, username: r.data.username, role: r.data.role, unit: r.data.unit });
        window.location.assign(PREFIX + "/" + home);
      });
    });
  }

  // -- courier -----------------------------------------------------------------------------
  function courierPage() {
    var current = null;
    api("GET", API + "/deliveries?limit=50").then(function (r) {
      if (!r.ok) { fail(r); return; }
      var numbers = r.data.items || [];
      Promise.all(numbers.map(function (n) {
        return api("GET", API + "/waybills/" + encodeURIComponent(n));
      })).then(function (views) {
        fillTable("deliveries", views.filter(function (v) { return v.ok; }).map(function (v) {
          var w = v.data;
          return el("tr", {}, [td(w.tracking_number), td(w.status), td(w.recipient.name), td(w.recipient.address)]);
        }));
      });
    });
    document.getElementById("resolve-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var input = document.getElementById("resolve-token");
      api("POST", API + "/courier/resolve", { token: input.value.trim() }).then(function (r) {
        input.value = "";
        var box = document.getElementById("resolved");
        if (!r.ok) { box.hidden = true; fail(r); return; }
        flash("", false);
        current = r.data.tracking_number;
        document.getElementById("resolved-number").textContent = r.data.tracking_number || "";
        document.getElementById("resolved-name").textContent = r.data.recipient_name || "";
        document.getElementById("resolved-address").textContent = r.data.address || "";
        var call = document.getElementById("resolved-call");
        var line = r.data.call || {};
        call.textContent = line.line || "—";
        call.setAttribute("href", line.virtual_number ? "tel:" + line.virtual_number + "," + line.extension : "#");
        box.hidden = false;
      });
    });
    document.getElementById("deliver-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!current) { return; }
      var proof = document.getElementById("deliver-proof");
      api("POST", API + "/courier/deliver", { tracking_number: current, proof_ref: proof.value.trim() }).then(function (r) {
        if (!r.ok) { fail(r); return; }
        proof.value = "";
        document.getElementById("resolved").hidden = true;
        document.getElementById("resolved-address").textContent = "";
        flash(t("courier.delivered") + "：" + current, false);
        current = null;
      });
    });
    document.getElementById("camera").addEventListener("click", function () {
      if (!("BarcodeDetector" in window) || !navigator.mediaDevices) { flash(t("courier.no_camera"), true); return; }
      var video = document.getElementById("camera-view");
      var detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (stream) {
        video.srcObject = stream; video.hidden = false; video.play();
        var tick = function () {
          detector.detect(video).then(function (codes) {
            if (codes.length) {
              stream.getTracks().forEach(function (tr) { tr.stop(); });
              video.hidden = true;
              document.getElementById("resolve-token").value = codes[0].rawValue;
              document.getElementById("resolve-form").requestSubmit();
            } else { window.requestAnimationFrame(tick); }
          });
        };
        tick();
      }, function () { flash(t("courier.no_camera"), true); });
    });
  }

  // -- desk (customer service, station clerks) --------------------------------------------------
  function allowanceMeters(data) {
    var box = document.getElementById("allowance");
    while (box.firstChild) { box.removeChild(box.firstChild); }
    ["hour", "day", "month"].forEach(function (w) {
      var a = data[w];
      if (!a) { return; }
      var share = a.allowance ? a.remaining / a.allowance : 0;
      var bar = el("div", { class: "bar" }, [el("span", { css: { width: Math.round(share * 100) + "%" } })]);
      box.appendChild(el("div", { class: "meter" + (share < 0.2 ? " low" : ""), id: "allowance-" + w }, [
        el("div", { i18n: "window." + w }),
        el("span", { class: "big", id: "allowance-" + w + "-remaining", text: String(a.remaining) }),
        el("span", { text: " / " + a.allowance + " " }),
        el("span", { i18n: "allow.remaining" }),
        bar,
        el("small", { text: t("allow.used") + " " + a.used + " · " + t("allow.ceiling") + " " + a.ceiling })
      ]));
    });
  }
  // The roles the labels API lets print (labels.PRINTING_ROLES); the API decides, this
  // only spares the others a button that would always be refused.
  var PRINTING_ROLES = ["station_clerk", "station_manager", "admin"];
  function deskPage(session) {
    var selected = null;
    var isAgent = session.role === "cs_agent";
    var canPrint = PRINTING_ROLES.indexOf(session.role) >= 0;
    document.getElementById("print-bar").hidden = !canPrint;
    document.getElementById("print-col").hidden = !canPrint;
    function printLabel(number, b) {
      var size = document.getElementById("label-size").value;
      flash("", false);
      download(API + "/labels", { tracking_numbers: [number], format: "pdf", size: size }, "application/pdf",
        number + "-" + size + ".pdf").then(function (r) {
        b.disabled = false;
        if (!r.ok) { fail(r); return; }
        var event = r.headers.get("X-Audit-Event");
        flash(t("desk.printed") + "：" + number + (event ? " · " + t("audit.event") + " #" + event : ""), false);
      }, function () { b.disabled = false; flash(t("common.load_failed"), true); });
    }
    document.getElementById("ticket-label").hidden = !isAgent;
    document.getElementById("contact-label").hidden = !isAgent;
    document.getElementById("purpose-label").hidden = isAgent;
    function refreshAllowance() {
      return api("GET", API + "/allowance").then(function (r) { if (r.ok) { allowanceMeters(r.data); } else { fail(r); } });
    }
    refreshAllowance();
    document.addEventListener("wg:lang", refreshAllowance);
    function clearRevealed() {
      var dl = document.getElementById("revealed-fields");
      while (dl.firstChild) { dl.removeChild(dl.firstChild); }
      document.getElementById("revealed").hidden = true;
    }
    function select(number, row) {
      selected = number;
      document.querySelectorAll("#results tr.selected").forEach(function (r) { r.classList.remove("selected"); });
      row.classList.add("selected");
      document.getElementById("reveal-number").textContent = number;
      document.getElementById("reveal-submit").disabled = false;
      clearRevealed();
    }
    function show(items) {
      fillTable("results", items.map(function (w) {
        var radio = el("input", { type: "radio", name: "pick", value: w.tracking_number, "aria-label": w.tracking_number });
        var row = el("tr", { "data-number": w.tracking_number }, [el("td", {}, [radio]), td(w.tracking_number), td(w.status), td(party(w.sender)), td(party(w.recipient)), td(w.destination_station || "")]);
        if (canPrint) {
          var print = button("desk.print", function (b) { printLabel(w.tracking_number, b); });
          print.classList.add("print");
          // Printing is not choosing the waybill to reveal.
          print.addEventListener("click", function (e) { e.stopPropagation(); });
          row.appendChild(el("td", {}, [print]));
        }
        radio.addEventListener("change", function () { select(w.tracking_number, row); });
        row.addEventListener("click", function () { radio.checked = true; select(w.tracking_number, row); });
        return row;
      }));
    }
    document.getElementById("search-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var query = document.getElementById("search-query");
      var by = document.querySelector("input[name=by]:checked").value;
      var text = query.value.trim();
      flash("", false);
      selected = null;
      document.getElementById("reveal-submit").disabled = true;
      document.getElementById("reveal-number").textContent = "—";
      clearRevealed();
      var request = by === "phone"
        ? api("POST", API + "/lookup", { phone: text, limit: 20 })  // the phone only in the body
        : api("GET", API + "/waybills/" + encodeURIComponent(text.toUpperCase()));
      if (by === "phone") {
        // The customer's own number: it verifies the party of the ticket opened next.
        if (isAgent) { document.getElementById("reveal-contact").value = text; }
        query.value = "";
      }
      request.then(function (r) {
        if (!r.ok) { show([]); fail(r); return; }
        show(by === "phone" ? (r.data.items || []) : [r.data]);
      });
    });
    document.getElementById("reveal-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!selected) { return; }
      var fields = Array.prototype.map.call(document.querySelectorAll("input[name=field]:checked"), function (c) { return c.value; });
      var payload = { fields: fields, reason: document.getElementById("reveal-reason").value.trim() };
      if (isAgent) {
        payload.purpose = "ticket:" + document.getElementById("reveal-ticket").value.trim();
      } else {
        payload.purpose = document.getElementById("reveal-purpose").value;
      }
      var totp = document.getElementById("reveal-totp");
      if (totp.value.trim()) { payload.totp = totp.value.trim(); }
      totp.value = "";
      clearRevealed();
      var number = selected;
      var contact = document.getElementById("reveal-contact");
      var opening = Promise.resolve(true);
      if (isAgent && contact.value.trim()) {
        // A new ticket: opened with the customer's phone for the party of the chosen
        // fields (the phone only in the POST body); an existing ticket id is reused.
        var party = fields.length ? fields[0].split(".")[0] : "recipient";
        opening = api("POST", API + "/tickets", {
          ticket_id: payload.purpose.slice("ticket:".length), waybill: number,
          party: party, contact_phone: contact.value.trim()
        }).then(function (o) {
          if (o.ok) { flash(t("desk.ticket_opened"), false); return true; }
          if (o.data && o.data.error && o.data.error.code === "ticket.exists") { return true; }
          fail(o);
          return false;
        });
        contact.value = "";
      }
      opening.then(function (go) { if (go) { reveal(number, payload); } });
    });
    function reveal(number, payload) {
      api("POST", API + "/waybills/" + encodeURIComponent(number) + "/reveal", payload).then(function (r) {
        refreshAllowance();
        if (!r.ok) { fail(r); return; }
        flash(t("common.done") + " · " + t("audit.event") + " #" + r.data.audit_event, false);
        var dl = document.getElementById("revealed-fields");
        Object.keys(r.data.fields || {}).sort().forEach(function (k) {
          var parts = k.split(".");
          dl.appendChild(el("dt", { text: t("wb." + parts[0]) + t("wb." + parts[1]) }));
          dl.appendChild(el("dd", { class: "plain", "data-field": k, text: r.data.fields[k] }));
        });
        document.getElementById("revealed").hidden = false;
      });
    }
  }

  // -- approvals (manager and security) ---------------------------------------------------------
  var PEOPLE = {};
  function loadPeople() {
    return api("GET", PREFIX + "/api/people").then(function (r) { if (r.ok) { PEOPLE = r.data.items || {}; } });
  }
  function person(id) { return PEOPLE[String(id)] || ("#" + id); }
  function loadApprovals() {
    api("GET", API + "/approvals?limit=50").then(function (r) {
      if (!r.ok) { fail(r); return; }
      fillTable("approvals", (r.data.items || []).map(function (a) {
        var actions = el("td");
        if (a.state === "pending") {
          actions.appendChild(button("security.approve", function () {
            api("POST", API + "/approvals/" + a.request_id + "/approve").then(function (x) {
              if (!x.ok) { fail(x); } else { flash(t("common.done"), false); }
              loadApprovals();
            });
          }, true));
        }
        return el("tr", {}, [td(a.request_id), td(person(a.requester_id)), td(a.state, "state-" + a.state), actions]);
      }));
    });
  }

  // -- station manager -----------------------------------------------------------------------
  function managerPage() {
    function load() {
      api("GET", PREFIX + "/api/team").then(function (r) {
        if (!r.ok) { fail(r); return; }
        var items = r.data.items || [];
        function cell(w) { return td(w ? w.used + " / " + w.allowance + " (" + t("allow.ceiling") + " " + w.ceiling + ")" : ""); }
        fillTable("team", items.map(function (p) {
          return el("tr", {}, [td(p.username), td(t("role." + p.role)), td(p.unit), td(p.grade), cell(p.windows.hour), cell(p.windows.day), cell(p.windows.month)]);
        }));
        usageBars(document.getElementById("team-chart"), items.map(function (p) {
          var d = p.windows.day || { used: 0, allowance: 0 };
          return { label: p.username + "（" + t("role." + p.role) + "）", used: d.used, limit: d.allowance };
        }), t("manager.chart"));
      });
    }
    load();
    document.addEventListener("wg:lang", load);
    loadPeople().then(loadApprovals);
  }

  // -- security ------------------------------------------------------------------------------
  function securityPage() {
    function loadCharts() {
      var span = document.getElementById("span").value;
      api("GET", PREFIX + "/api/reveal-series?span=" + span).then(function (r) {
        if (!r.ok) { fail(r); return; }
        var buckets = r.data.buckets || [];
        var roles = {};
        buckets.forEach(function (b) { Object.keys(b.by_role).forEach(function (k) { roles[k] = true; }); });
        var labels = buckets.map(function (b) {
          var d = new Date(b.from);
          return span === "week" ? (d.getMonth() + 1) + "/" + d.getDate() : String(d.getHours()).padStart(2, "0") + ":00";
        });
        var series = Object.keys(roles).sort().map(function (role) {
          return { name: t("role." + role), color: ROLE_COLORS[role] || "#888", values: buckets.map(function (b) { return b.by_role[role] || 0; }) };
        });
        stackedBars(document.getElementById("chart-roles"), labels, series, t("security.chart"));
        var units = r.data.by_unit || [];
        stackedBars(document.getElementById("chart-units"), units.map(function (u) { return u.unit; }), [
          { name: t("chart.allow"), color: "#1a7f37", values: units.map(function (u) { return u.allowed; }) },
          { name: t("chart.deny"), color: "#c62828", values: units.map(function (u) { return u.denied; }) },
          { name: t("chart.other"), color: "#b26a00", values: units.map(function (u) { return u.events - u.allowed - u.denied; }) }
        ], t("security.chart_station"));
      });
    }
    function loadAlerts() {
      api("GET", API + "/alerts?limit=50").then(function (r) {
        if (!r.ok) { fail(r); return; }
        fillTable("alerts", (r.data.items || []).map(function (a) {
          var actions = el("td", {}, [button("security.ack", function () {
            api("POST", API + "/alerts/" + a.id + "/ack").then(function (x) { if (!x.ok) { fail(x); } loadAlerts(); });
          })]);
          return el("tr", {}, [td(a.at.slice(0, 19).replace("T", " ")), td(a.kind), td(a.severity), td(a.unit), td(a.message), actions]);
        }));
      });
    }
    function loadExports() {
      api("GET", API + "/exports?limit=100").then(function (r) {
        if (!r.ok) { fail(r); return; }
        fillTable("exports", (r.data.items || []).map(function (x) {
          var actions = el("td");
          if (x.state === "requested") {
            actions.appendChild(button("security.approve", function () {
              api("POST", API + "/exports/" + x.export_id + "/approve", { hours: 24 }).then(function (y) {
                if (!y.ok) { fail(y); } else { flash(t("common.done") + " #" + x.export_id, false); }
                loadExports();
              });
            }, true));
            actions.appendChild(button("security.deny", function () {
              api("POST", API + "/exports/" + x.export_id + "/deny").then(function (y) { if (!y.ok) { fail(y); } loadExports(); });
            }));
          }
          return el("tr", { "data-export": String(x.export_id) }, [td(x.export_id), td(person(x.requester_id)), td((x.fields || []).join(", ")), td(x.purpose), td(x.state, "state-" + x.state), actions]);
        }));
      });
    }
    document.getElementById("audit-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var by = document.getElementById("audit-by").value;
      var q = document.getElementById("audit-query").value.trim();
      var path = by === "waybill" ? "/audit/waybills/" + encodeURIComponent(q.toUpperCase()) : "/audit/actors/" + encodeURIComponent(q);
      api("GET", API + path + "?limit=200").then(function (r) {
        if (!r.ok) { fail(r); return; }
        fillTable("audit", (r.data.items || []).slice().reverse().map(function (e) {
          return el("tr", {}, [td(e.event_id), td(String(e.at || "").slice(0, 19).replace("T", " ")), td(e.actor), td(e.action), td(e.decision, "state-" + e.decision), td(e.rule)]);
        }));
      });
    });
    document.getElementById("span").addEventListener("change", loadCharts);
    document.addEventListener("wg:lang", loadCharts);
    loadCharts();
    loadAlerts();
    loadPeople().then(function () { loadExports(); loadApprovals(); });
  }

  // -- administrator ---------------------------------------------------------------------------
  /* Units, users and the policy, each change through the API (which validates, audits and
   * answers with its own error). The one-time TOTP secret of a new user or a reset lives
   * only in the DOM of #secret-box until it is closed: never in a URL, storage or log. */
  function adminPage(session) {
    var checked = null;
    var users = {};
    var current = null;  // the username open in the management panel
    function field(form, name) { return form.elements.namedItem(name); }
    function say(id, text, ok) {
      var s = document.getElementById(id);
      s.className = "status " + (ok ? "ok" : "bad");
      s.textContent = text;
    }
    function clearInvalid(form) {
      form.querySelectorAll(".invalid").forEach(function (n) { n.classList.remove("invalid"); n.removeAttribute("aria-invalid"); });
    }
    /* Mark the input the API's error names (its `field`, or the first malformed location). */
    function markInvalid(form, data) {
      var err = (data && data.error) || {};
      var name = err.field;
      if (!name && err.problems && err.problems.length) {
        var parts = String(err.problems[0].location || "").split(".");
        name = parts[0] === "body" ? parts[1] : parts[0];
      }
      var input = name ? field(form, name) : null;
      if (input && input.classList) {
        input.classList.add("invalid");
        input.setAttribute("aria-invalid", "true");
      }
    }
    function busy(form, on) { form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = on; }); }
    function passwordsDiffer(form, statusId) {
      if (field(form, "password").value === field(form, "password_again").value) { return false; }
      field(form, "password_again").classList.add("invalid");
      say(statusId, t("admin.password_mismatch"), false);
      return true;
    }
    function clearPasswords(form) { field(form, "password").value = ""; field(form, "password_again").value = ""; }

    // The enrolment secret, exactly as the API returned it.
    var secretBox = document.getElementById("secret-box");
    function closeSecret() {
      document.getElementById("secret-value").textContent = "";
      document.getElementById("secret-uri").textContent = "";
      document.getElementById("secret-user").textContent = "";
      secretBox.hidden = true;
    }
    function showSecret(username, secret) {
      closeSecret();
      if (!secret) { return; }
      document.getElementById("secret-user").textContent = username;
      document.getElementById("secret-value").textContent = secret;
      document.getElementById("secret-uri").textContent = "otpauth://totp/waybillguard:" + encodeURIComponent(username) +
        "?secret=" + secret + "&issuer=waybillguard&digits=6&period=30";
      secretBox.hidden = false;
      secretBox.scrollIntoView({ block: "nearest" });
    }
    document.getElementById("secret-close").addEventListener("click", closeSecret);

    // -- units --
    function coversText(list) {
      list = list || [];
      return list.slice(0, 4).join(", ") + (list.length > 4 ? " …(+" + (list.length - 4) + ")" : "");
    }
    function loadUnits() {
      return api("GET", API + "/units?limit=500").then(function (r) {
        if (!r.ok) { fail(r); return; }
        var items = r.data.items || [];
        var codes = document.getElementById("unit-codes");
        while (codes.firstChild) { codes.removeChild(codes.firstChild); }
        items.forEach(function (u) { if (!u.disabled) { codes.appendChild(el("option", { value: u.code, label: u.name })); } });
        fillTable("units", items.map(function (u) {
          var actions = el("td");
          if (!u.disabled && u.code !== session.unit) {  // the API refuses one's own unit
            actions.appendChild(button("admin.disable", function (b) {
              if (!window.confirm(u.code + "：" + t("admin.confirm_disable_unit"))) { b.disabled = false; return; }
              api("POST", API + "/units/" + encodeURIComponent(u.code) + "/disable").then(function (x) {
                b.disabled = false;
                if (!x.ok) { say("units-status", problem(x.data, x.status), false); return; }
                say("units-status", t("admin.unit_disabled") + "：" + x.data.code, true);
                loadUnits(); loadUsers();
              });
            }));
          }
          var kind = t("kind." + u.kind) + (u.franchise ? " · " + t("admin.franchise") : "");
          var state = u.disabled ? "disabled" : "active";
          return el("tr", { "data-unit": u.code }, [td(u.code), td(kind), td(u.name), td(u.parent), td(coversText(u.covers)), td(u.members), td(t("state." + state), "state-" + state), actions]);
        }));
      });
    }
    var unitForm = document.getElementById("unit-form");
    function kindChanged() {
      var station = field(unitForm, "kind").value === "station";
      field(unitForm, "covers").disabled = !station;
      field(unitForm, "franchise").disabled = !station;
    }
    field(unitForm, "kind").addEventListener("change", kindChanged);
    unitForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearInvalid(unitForm);
      var kind = field(unitForm, "kind").value;
      var payload = { code: field(unitForm, "code").value.trim(), kind: kind, name: field(unitForm, "name").value.trim() };
      var parent = field(unitForm, "parent").value.trim();
      if (parent) { payload.parent = parent; }
      if (kind === "station") {
        var covers = field(unitForm, "covers").value.split(/[\s,，、;；]+/).filter(Boolean);
        if (covers.length) { payload.covers = covers; }
        if (field(unitForm, "franchise").checked) { payload.franchise = true; }
      }
      busy(unitForm, true);
      api("POST", API + "/units", payload).then(function (r) {
        busy(unitForm, false);
        if (!r.ok) { markInvalid(unitForm, r.data); say("unit-status", problem(r.data, r.status), false); return; }
        say("unit-status", t("admin.unit_added") + "：" + r.data.code, true);
        unitForm.reset();
        kindChanged();
        loadUnits();
      });
    });
    kindChanged();

    // -- users --
    function loadUsers() {
      return api("GET", API + "/users?limit=500").then(function (r) {
        if (!r.ok) { fail(r); return; }
        users = {};
        fillTable("users", (r.data.items || []).map(function (u) {
          users[u.username] = u;
          var grade = el("select", { "aria-label": u.username, name: "grade" });
          for (var g = 0; g <= 9; g++) {
            var o = el("option", { value: String(g), text: String(g) });
            if (g === u.grade) { o.selected = true; }
            grade.appendChild(o);
          }
          var set = button("admin.set_grade", function (b) {
            api("POST", API + "/users/" + encodeURIComponent(u.username) + "/grade", { grade: Number(grade.value) }).then(function (x) {
              b.disabled = false;
              if (!x.ok) { say("users-status", problem(x.data, x.status), false); return; }
              say("users-status", t("admin.grade_set") + "：" + u.username + " → " + x.data.grade, true);
              loadUsers();
            });
          });
          var manage = button("admin.manage", function (b) { b.disabled = false; openPanel(u.username); });
          return el("tr", { "data-user": u.username }, [td(u.username), td(t("role." + u.role)), td(u.unit), td(t("state." + u.state), "state-" + u.state), el("td", { class: "grade" }, [grade, set]), el("td", {}, [manage])]);
        }));
        if (current) { openPanel(current, true); }
      });
    }
    var userForm = document.getElementById("user-form");
    function roleChanged() { document.getElementById("user-device-label").hidden = field(userForm, "role").value !== "courier"; }
    field(userForm, "role").addEventListener("change", roleChanged);
    roleChanged();
    userForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearInvalid(userForm);
      if (passwordsDiffer(userForm, "user-status")) { return; }
      var role = field(userForm, "role").value;
      var payload = {
        username: field(userForm, "username").value.trim(),
        role: role,
        unit: field(userForm, "unit").value.trim(),
        password: field(userForm, "password").value
      };
      var grade = field(userForm, "grade");
      if (grade.validity && grade.validity.badInput) {
        // A number input reads "" for text it cannot parse: that is not "the role's default".
        grade.classList.add("invalid");
        say("user-status", fieldLabel("grade") + "：" + t("reason.int_parsing"), false);
        return;
      }
      // Sent as typed, even out of 0-9: the API says what is wrong with it.
      if (grade.value !== "") { payload.grade = Number(grade.value); }
      var device = field(userForm, "device").value.trim();
      if (role === "courier" && device) { payload.device = device; }
      busy(userForm, true);
      api("POST", API + "/users", payload).then(function (r) {
        busy(userForm, false);
        if (!r.ok) { markInvalid(userForm, r.data); say("user-status", problem(r.data, r.status), false); return; }
        clearPasswords(userForm);
        say("user-status", t("admin.user_added") + "：" + r.data.username + (r.data.totp_secret ? "" : " · " + t("admin.no_totp")), true);
        showSecret(r.data.username, r.data.totp_secret);
        userForm.reset();
        roleChanged();
        loadUsers();
        loadUnits();
      });
    });

    // -- one user: disable / enable, password, device --
    var panel = document.getElementById("user-panel");
    var disableForm = document.getElementById("disable-form");
    var passwordForm = document.getElementById("password-form");
    var deviceForm = document.getElementById("device-form");
    function openPanel(username, keepStatus) {
      var u = users[username];
      if (!u) { panel.hidden = true; current = null; return; }
      if (current !== username) {
        disableForm.reset(); passwordForm.reset(); deviceForm.reset();
        [disableForm, passwordForm, deviceForm].forEach(clearInvalid);
      }
      current = username;
      if (!keepStatus) { document.getElementById("panel-status").textContent = ""; }
      document.getElementById("panel-user").textContent = u.username;
      document.getElementById("panel-state").textContent = t("state." + u.state);
      disableForm.hidden = u.state !== "active";
      document.getElementById("enable-row").hidden = u.state === "active";
      document.getElementById("reset-totp-label").hidden = u.role === "courier";
      deviceForm.hidden = u.role !== "courier";
      document.querySelectorAll("#users tr.selected").forEach(function (r) { r.classList.remove("selected"); });
      var row = document.querySelector("#users tr[data-user='" + u.username + "']");
      if (row) { row.classList.add("selected"); }
      panel.hidden = false;
      if (!keepStatus) { panel.scrollIntoView({ block: "nearest" }); }
    }
    function userPath(suffix) { return API + "/users/" + encodeURIComponent(current) + suffix; }
    function panelResult(form, r, doneKey) {
      if (form) { busy(form, false); }
      if (!r.ok) {
        if (form) { markInvalid(form, r.data); }
        say("panel-status", problem(r.data, r.status), false);
        return false;
      }
      say("panel-status", t(doneKey) + "：" + r.data.username, true);
      loadUsers();
      return true;
    }
    disableForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearInvalid(disableForm);
      var reason = field(disableForm, "reason").value.trim();
      busy(disableForm, true);
      api("POST", userPath("/disable"), reason ? { reason: reason } : {}).then(function (r) {
        if (panelResult(disableForm, r, "admin.disabled_done")) { disableForm.reset(); }
      });
    });
    document.getElementById("enable-submit").addEventListener("click", function () {
      api("POST", userPath("/enable")).then(function (r) { panelResult(null, r, "admin.enabled_done"); });
    });
    passwordForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearInvalid(passwordForm);
      if (passwordsDiffer(passwordForm, "panel-status")) { return; }
      var payload = { password: field(passwordForm, "password").value };
      if (field(passwordForm, "reset_totp").checked && users[current].role !== "courier") { payload.reset_totp = true; }
      busy(passwordForm, true);
      var who = current;
      api("POST", userPath("/password"), payload).then(function (r) {
        clearPasswords(passwordForm);
        if (!panelResult(passwordForm, r, "admin.password_reset")) { return; }
        passwordForm.reset();
        showSecret(who, r.data.totp_secret);
      });
    });
    deviceForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearInvalid(deviceForm);
      busy(deviceForm, true);
      api("POST", userPath("/device"), { device: field(deviceForm, "device").value.trim() }).then(function (r) {
        if (panelResult(deviceForm, r, "admin.device_bound")) { deviceForm.reset(); }
      });
    });
    document.getElementById("panel-close").addEventListener("click", function () {
      panel.hidden = true;
      current = null;
      document.querySelectorAll("#users tr.selected").forEach(function (r) { r.classList.remove("selected"); });
    });

    // -- policy --
    var text = document.getElementById("policy-text");
    var applyBtn = document.getElementById("policy-apply");
    var status = document.getElementById("policy-status");
    function loadPolicy() {
      api("GET", API + "/policy").then(function (r) {
        if (!r.ok) { fail(r); return; }
        text.value = r.data.text;
        document.getElementById("policy-version").textContent = String(r.data.version);
        checked = null; applyBtn.disabled = true;
      });
    }
    text.addEventListener("input", function () { checked = null; applyBtn.disabled = true; status.textContent = ""; });
    document.getElementById("policy-check").addEventListener("click", function () {
      var submitted = text.value;
      api("POST", API + "/policy/check", { text: submitted }).then(function (r) {
        if (!r.ok) { status.className = "status bad"; status.textContent = problem(r.data, r.status); return; }
        checked = submitted;
        applyBtn.disabled = false;
        status.className = "status ok";
        status.textContent = t("admin.valid") + " · " + t("admin.version") + " " + r.data.version;
      });
    });
    applyBtn.addEventListener("click", function () {
      if (checked === null || checked !== text.value) { applyBtn.disabled = true; return; }
      api("POST", API + "/policy/apply", { text: checked }).then(function (r) {
        if (!r.ok) { status.className = "status bad"; status.textContent = problem(r.data, r.status); return; }
        status.className = "status ok";
        status.textContent = t("admin.applied") + " · " + t("admin.version") + " " + r.data.version;
        loadPolicy();
      });
    });
    document.addEventListener("wg:lang", function () { loadUsers(); loadUnits(); });
    loadUsers();
    loadUnits();
    loadPolicy();
  }

  // -- start ------------------------------------------------------------------------------
  document.getElementById("lang-toggle").addEventListener("click", toggleLang);
  document.getElementById("logout").addEventListener("click", logout);
  var page = body.dataset.page;
  if (page === "login") {
    applyLang();
    loginPage();
    return;
  }
  var session = requireSession();
  if (!session) { return; }
  applyLang();
  var pages = { courier: courierPage, desk: deskPage, manager: managerPage, security: securityPage, admin: adminPage };
  pages[page](session);
})();
