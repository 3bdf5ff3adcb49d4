// The live leaderboard: a snapshot on connect, coalesced updates after it, a resync when
// a version is skipped, and reconnection with exponential backoff and jitter.
(function () {
  "use strict";
  var rowsEl = document.getElementById("rows");
  var statusEl = document.getElementById("status");
  var emptyEl = document.getElementById("empty");
  var version = null;
  var ranks = {};          // userId -> rank last shown
  var attempt = 0;
  var socket = null;

  function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusEl.textContent = text;
  }

  function cell(className, text) {
    var el = document.createElement("span");
    el.className = className;
    el.textContent = text;   // never innerHTML: usernames are user input
    return el;
  }

  function render(entries, changes) {
    var changed = {};
    (changes || []).forEach(function (c) { changed[c.userId] = c; });
    var fragment = document.createDocumentFragment();
    var next = {};
    entries.forEach(function (entry) {
      var li = document.createElement("li");
      li.className = "row";
      li.dataset.userId = entry.userId;
      li.appendChild(cell("rank", "#" + entry.rank));
      li.appendChild(cell("name", entry.username));
      li.appendChild(cell("score", entry.score.toLocaleString()));
      var before = ranks[entry.userId];
      if (before !== undefined && before > entry.rank) li.classList.add("moved-up");
      else if (before !== undefined && before < entry.rank) li.classList.add("moved-down");
      else if (before === undefined && version !== null) li.classList.add("moved-up");
      if (changed[entry.userId]) li.classList.add("changed");
      next[entry.userId] = entry.rank;
      fragment.appendChild(li);
    });
    ranks = next;
    rowsEl.replaceChildren(fragment);
    emptyEl.hidden = entries.length > 0;
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function onMessage(event) {
    var message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    if (message.type === "leaderboard.snapshot") {
      render(message.entries, []);
      version = message.version;
    } else if (message.type === "leaderboard.update") {
      if (version !== null && message.version !== version + 1 && message.version > version) {
        send({ type: "resync" });   // missed an update: ask for the whole board
        return;
      }
      if (version !== null && message.version <= version) return;
      render(message.entries, message.changes);
      version = message.version;
    } else if (message.type === "me.update") {
      var score = document.getElementById("me-score");
      var rank = document.getElementById("me-rank");
      if (score) score.textContent = message.score.toLocaleString();
      if (rank) rank.textContent = message.rank === null ? "–" : "#" + message.rank;
    }
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/ws/leaderboard/");
    setStatus(attempt ? "reconnecting" : "connecting", attempt ? "Reconnecting…" : "Connecting…");
    socket.addEventListener("open", function () {
      attempt = 0;
      setStatus("live", "Live");
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", function (event) {
      socket = null;
      if (event.code === 4401) { setStatus("offline", "Please log in again"); return; }
      attempt += 1;
      var base = Math.min(30000, 500 * Math.pow(2, attempt - 1));
      var delay = base / 2 + Math.random() * base / 2;   // jitter: reconnects spread out
      setStatus("reconnecting", "Reconnecting in " + Math.ceil(delay / 1000) + " s…");
      window.setTimeout(connect, delay);
    });
  }

  setInterval(function () { send({ type: "ping" }); }, 25000);
  connect();
})();
