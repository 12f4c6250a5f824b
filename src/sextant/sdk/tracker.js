/* Sextant browser tracker: <script src="https://host/t.js" data-key="sx_w_..." defer></script>
   Options: data-api="https://other-host" (default: this script's origin), data-respect-dnt,
   data-auto="false" (no automatic page views). API: sextant.track(name, props),
   sextant.identify(userId, traits), sextant.page(props). Never throws into the page. */
(function (w, d) {
  var queued = w.sextant && w.sextant.q;
  function noop() {}
  w.sextant = { track: noop, identify: noop, page: noop, reset: noop };
  try {
    var script = d.currentScript || d.querySelector("script[data-key]");
    var key = script.getAttribute("data-key");
    var api = (script.getAttribute("data-api") || new URL(script.src).origin) + "/api/v1/collect";
    var nav = w.navigator;
    var loc = w.location;
    var off = script.hasAttribute("data-respect-dnt") &&
      (nav.doNotTrack == "1" || w.doNotTrack == "1" || nav.msDoNotTrack == "1");
    var SESSION_IDLE = 18e5; // a session ends after 30 idle minutes, like Plausible/GA
    var mem = {};

    var uuid = function () {
      if (w.crypto && crypto.randomUUID) return crypto.randomUUID();
      return "10000000-1000-4000-8000-100000000000".replace(/[018]/g, function (c) {
        return (c ^ (Math.random() * 16) >> (c / 4)).toString(16);
      });
    };
    // Storage can be disabled or full (private mode, cookie blocking): fall back to memory.
    var store = function (kind, name, value) {
      try {
        var s = w[kind];
        if (value === undefined) return s.getItem(name);
        if (value === null) s.removeItem(name); else s.setItem(name, value);
      } catch (e) {
        if (value === undefined) return mem[name];
        mem[name] = value;
      }
    };
    var anonymousId = function () {
      var id = store("localStorage", "sx_aid");
      if (!id) store("localStorage", "sx_aid", id = uuid());
      return id;
    };
    var sessionId = function () {
      var now = Date.now();
      var parts = (store("sessionStorage", "sx_sid") || "").split(".");
      var id = parts[1] && now - parts[1] < SESSION_IDLE ? parts[0] : uuid();
      store("sessionStorage", "sx_sid", id + "." + now);
      return id;
    };

    var send = function (type, fields) {
      if (off || !key) return;
      var now = new Date().toISOString();
      var body = {
        write_key: key,
        type: type,
        message_id: uuid(),
        anonymous_id: anonymousId(),
        user_id: store("localStorage", "sx_uid") || undefined,
        session_id: sessionId(),
        timestamp: now,
        sent_at: now,
        context: {
          page: { url: loc.href, path: loc.pathname, title: d.title, referrer: referrer },
          screen: { width: w.screen.width, height: w.screen.height },
          locale: nav.language,
          library: { name: "sextant-js", version: "1" },
        },
      };
      for (var f in fields) body[f] = fields[f];
      var data = JSON.stringify(body);
      // text/plain keeps the beacon a "simple" request: no CORS preflight.
      var sent = false;
      try {
        sent = nav.sendBeacon && nav.sendBeacon(api, new Blob([data], { type: "text/plain" }));
      } catch (e) {}
      if (!sent && w.fetch) {
        fetch(api, {
          method: "POST", body: data, keepalive: true, credentials: "omit",
          headers: { "Content-Type": "text/plain" },
        }).catch(noop);
      }
    };
    var safe = function (fn) {
      return function () {
        try { return fn.apply(null, arguments); } catch (e) {}
      };
    };

    var last;
    var referrer = d.referrer;
    var page = safe(function (props) {
      var here = loc.href;
      if (here === last && !props) return; // pushState to the same URL is not a new view
      // After an in-app navigation the previous view is the referrer, as with a full load.
      if (last) referrer = last;
      last = here;
      send("page", { event: "$pageview", properties: props || {} });
    });
    var api_ = {
      track: safe(function (name, props) {
        if (name) send("track", { event: String(name), properties: props || {} });
      }),
      identify: safe(function (userId, traits) {
        if (userId != null) store("localStorage", "sx_uid", String(userId));
        send("identify", { event: "$identify", traits: traits || {} });
      }),
      page: page,
      reset: safe(function () {
        store("localStorage", "sx_uid", null);
        store("localStorage", "sx_aid", null);
        store("sessionStorage", "sx_sid", null);
      }),
    };
    w.sextant = api_;

    // Single-page apps: wrap the history API and listen to back/forward and hash changes.
    var auto = script.getAttribute("data-auto") !== "false";
    if (auto) {
      var hist = w.history;
      ["pushState", "replaceState"].forEach(function (m) {
        var orig = hist[m];
        if (!orig) return;
        hist[m] = function () {
          var out = orig.apply(this, arguments);
          setTimeout(function () { page(); }, 0);
          return out;
        };
      });
      w.addEventListener("popstate", function () { page(); });
      w.addEventListener("hashchange", function () { page(); });
    }

    // Outbound links: a click on a link to another host.
    d.addEventListener("click", safe(function (e) {
      var a = e.target && e.target.closest && e.target.closest("a[href]");
      if (a && /^https?:$/.test(a.protocol) && a.host !== loc.host) {
        api_.track("$outbound_click", { url: a.href });
      }
    }), true);

    (queued || []).forEach(function (args) {
      var fn = api_[args[0]];
      if (fn) fn.apply(null, [].slice.call(args, 1));
    });
    if (auto) {
      if (d.visibilityState === "prerender") {
        d.addEventListener("visibilitychange", function v() {
          if (d.visibilityState === "prerender") return;
          d.removeEventListener("visibilitychange", v);
          page();
        });
      } else {
        page();
      }
    }
  } catch (e) {}
})(window, document);
