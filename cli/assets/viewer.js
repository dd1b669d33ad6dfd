// The evidence viewer of a sessionlake export bundle (index.html): builds the timeline from
// the bundle's commands.jsonl and replays session.cast in asciinema-player; a click on a
// command moves the replay to its moment. Everything comes from the JSON blocks of the page
// (no fetch: the page opens from file://) and reaches the screen through textContent only.
(function () {
  "use strict";

  function data(id) {
    var element = document.getElementById(id);
    return JSON.parse(element ? element.textContent : "null");
  }

  function showError(text) {
    var element = document.getElementById("player-error");
    element.textContent = text;
    element.hidden = false;
  }

  function cell(row, text, className) {
    var td = document.createElement("td");
    if (className) {
      td.className = className;
    }
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function mark(td, text, className, title) {
    var span = document.createElement("span");
    span.className = "mark " + className;
    span.textContent = text;
    if (title) {
      span.title = title;
    }
    td.appendChild(span);
  }

  function seconds(t) {
    return "+" + t.toFixed(t < 10 ? 2 : 1) + " s";
  }

  var cast = data("sl-cast");
  var moments = data("sl-moments") || [];
  var commands = [];
  String(data("sl-commands") || "").split("\n").forEach(function (line, index) {
    if (line === "") {
      return;
    }
    try {
      commands.push(JSON.parse(line));
    } catch (error) {
      showError("commands.jsonl line " + (index + 1) + " is not JSON");
    }
  });

  var player = null;
  var container = document.getElementById("player");
  var markers = [];
  commands.forEach(function (row, index) {
    var moment = moments[index];
    if (moment && typeof moment.t === "number") {
      markers.push([moment.t, "#" + row.seq + " " + String(row.command || "").slice(0, 80)]);
    }
  });
  // The terminal as wide as its columns need at a readable size, and no wider: the player
  // stays in view above the timeline.
  try {
    var columns = JSON.parse(String(cast).split("\n", 1)[0]).width;
    if (columns > 0) {
      container.style.maxWidth = Math.round(columns * 9.5) + "px";
    }
  } catch (error) {
    showError("session.cast has no asciicast header");
  }
  try {
    player = AsciinemaPlayer.create({ data: cast }, container, {
      preload: true,
      fit: "width",
      markers: markers,
      terminalFontSize: "small",
    });
  } catch (error) {
    showError("The replay could not start: " + error);
  }
  // For tests and for the curious: the player of this page.
  window.sessionlakePlayer = player;

  var body = document.querySelector("#timeline tbody");
  var current = null;
  commands.forEach(function (row, index) {
    var moment = moments[index] || {};
    var tr = document.createElement("tr");
    tr.dataset.seq = String(row.seq);
    cell(tr, String(row.seq));
    var when = row.time;
    if (!when && typeof moment.t === "number") {
      when = seconds(moment.t) + " in replay";
    }
    cell(tr, when || "", "mono");
    var user = row.effective_user || row.run_as || "";
    cell(tr, user, "mono");
    cell(tr, row.cwd || "", "mono");
    cell(tr, String(row.command || ""), "command");
    var marks = cell(tr, "");
    if (row.redactions > 0) {
      mark(marks, "redacted ×" + row.redactions, "redacted", "secrets masked in the command or output");
    }
    if (row.output_truncated) {
      mark(marks, "output cut", "truncated", "the lake keeps the output up to its cap");
    }
    if (row.kind === "repl") {
      mark(marks, "in " + (row.program || "a program"), "repl", "typed into a program, not the shell");
    }
    if (moment.hint) {
      mark(marks, moment.hint, "hint", "read from the output: transcripts record no exit status");
    }
    if (typeof moment.t === "number") {
      tr.dataset.t = String(moment.t);
      tr.title = "Replay from " + seconds(moment.t);
      tr.tabIndex = 0;
      var jump = function () {
        if (current) {
          current.classList.remove("current");
        }
        current = tr;
        tr.classList.add("current");
        if (!player) {
          return;
        }
        player.pause();
        player.seek(moment.t);
      };
      tr.addEventListener("click", jump);
      tr.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          jump();
        }
      });
    } else {
      tr.className = "nojump";
      tr.title = "No moment in the replay is known for this command";
    }
    body.appendChild(tr);
  });

  // Rows scrolled to stay clear of the player that sticks above them.
  function clearOfPlayer() {
    var box = container.parentElement;
    var sticky = box && window.getComputedStyle(box).position === "sticky";
    document.documentElement.style.scrollPaddingTop = sticky ? box.offsetHeight + "px" : "";
  }
  clearOfPlayer();
  window.addEventListener("resize", clearOfPlayer);
  new ResizeObserver(clearOfPlayer).observe(container);

  // A link to index.html#seq-N (as the reports of `--format html` write) opens at command N.
  var wanted = /^#seq-([0-9]+)$/.exec(window.location.hash);
  if (wanted) {
    var row = body.querySelector('tr[data-seq="' + wanted[1] + '"]');
    if (row) {
      row.scrollIntoView({ block: "center" });
      row.click();
    }
  }
})();
