// Live refresh pauses while the tab is hidden (no requests nobody reads) and catches up at
// once when it is shown again. Polling elements carry data-poll and a "refresh" trigger.
(function () {
  "use strict";
  document.addEventListener("htmx:beforeRequest", function (event) {
    var element = event.detail.elt;
    if (document.hidden && element && element.hasAttribute("data-poll")) {
      event.preventDefault();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !window.htmx) {
      return;
    }
    document.querySelectorAll("[data-poll]").forEach(function (element) {
      window.htmx.trigger(element, "refresh");
    });
  });
})();

// Times in the viewer's time zone, as Grafana and Uptime Kuma show them. The server writes each
// moment as <time datetime="...Z" data-local="seconds|minutes|time|clock">... UTC</time>; this
// rewrites the text in the browser's zone (its name after it) and keeps the UTC text in the
// title, for hover. Without JavaScript the page reads UTC, and says so. Swapped-in fragments
// (htmx) are rewritten as they arrive.
(function () {
  "use strict";
  var FIELDS = {
    seconds: ["year", "month", "day", "hour", "minute", "second"],
    minutes: ["year", "month", "day", "hour", "minute"],
    time: ["hour", "minute", "second"],
    clock: ["hour", "minute"]
  };
  function local(date, precision) {
    var fields = FIELDS[precision] || FIELDS.seconds;
    var options = { hourCycle: "h23", timeZoneName: "short" };
    fields.forEach(function (name) {
      options[name] = name === "year" ? "numeric" : "2-digit";
    });
    var parts = {};
    new Intl.DateTimeFormat(undefined, options).formatToParts(date).forEach(function (part) {
      parts[part.type] = part.value;
    });
    var day = fields[0] === "year" ? parts.year + "-" + parts.month + "-" + parts.day + " " : "";
    var clock = parts.hour + ":" + parts.minute + (parts.second ? ":" + parts.second : "");
    return day + clock + " " + parts.timeZoneName;
  }
  function convert(root) {
    if (!root || !root.querySelectorAll) {
      return;
    }
    root.querySelectorAll("time[datetime][data-local]").forEach(function (element) {
      if (element.hasAttribute("data-localized")) {
        return;
      }
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) {
        return;
      }
      element.setAttribute("title", element.textContent);
      element.textContent = local(date, element.getAttribute("data-local"));
      element.setAttribute("data-localized", "");
    });
  }
  convert(document);
  document.addEventListener("htmx:load", function (event) {
    convert(event.detail.elt);
  });
})();
