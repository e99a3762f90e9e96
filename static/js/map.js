// The dependency map: a click (or Enter) on a service marks what its failure takes down
// (data-down: hard chains) and what it degrades (data-degraded), as the server computed it;
// a second click on it, or a click elsewhere, clears. A double click opens its page.
(function () {
  "use strict";
  var map = document.getElementById("dependency-map");
  var said = document.getElementById("map-impact");
  if (!map) {
    return;
  }
  var nodes = map.querySelectorAll("g.node[data-name]");
  var selected = null;

  function clear() {
    nodes.forEach(function (n) {
      n.classList.remove("selected", "impact-down", "impact-degraded", "dim");
    });
    selected = null;
    said.textContent = "";
  }

  function select(node) {
    var name = node.getAttribute("data-name");
    if (!name) {
      return;
    }
    if (selected === node) {
      clear();
      return;
    }
    clear();
    selected = node;
    var down = (node.getAttribute("data-down") || "").split(" ").filter(Boolean);
    var degraded = (node.getAttribute("data-degraded") || "").split(" ").filter(Boolean);
    nodes.forEach(function (n) {
      var other = n.getAttribute("data-name");
      if (n === node) {
        n.classList.add("selected");
      } else if (down.indexOf(other) >= 0) {
        n.classList.add("impact-down");
      } else if (degraded.indexOf(other) >= 0) {
        n.classList.add("impact-degraded");
      } else {
        n.classList.add("dim");
      }
    });
    said.textContent = "If " + name + " fails: " +
      (down.length ? down.length + " down (" + down.join(", ") + ")" : "nothing goes down") +
      (degraded.length ? "; " + degraded.length + " degraded (" + degraded.join(", ") + ")" : "") + ".";
  }

  nodes.forEach(function (node) {
    node.addEventListener("click", function (event) {
      event.stopPropagation();
      select(node);
    });
    node.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        select(node);
      }
    });
    node.addEventListener("dblclick", function () {
      window.location.href = "/services/" + encodeURIComponent(node.getAttribute("data-name")) + "/";
    });
  });
  map.addEventListener("click", clear);
})();
