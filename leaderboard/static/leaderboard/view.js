// What the live page draws: the board tabs, the top rows, the last period's winners and
// the time left. Every piece of data goes in through textContent (usernames and board
// titles are user input), never as HTML.

export function cell(className, text) {
  var el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

export function formatScore(score) {
  return Number(score).toLocaleString();
}

export function formatRank(rank) {
  return rank === null || rank === undefined ? "–" : "#" + rank;
}

// Tabs with the WAI-ARIA tabs pattern: one tab stop (the selected tab), arrows, Home and
// End move between tabs and select them.
export function drawTabs(container, boards, onSelect) {
  var fragment = document.createDocumentFragment();
  boards.forEach(function (board) {
    var tab = document.createElement("button");
    tab.type = "button";
    tab.className = "tab";
    tab.id = "tab-" + board.slug;
    tab.dataset.board = board.slug;
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-controls", "board-panel");
    tab.setAttribute("aria-selected", "false");
    tab.tabIndex = -1;
    tab.textContent = board.title || board.slug;
    tab.addEventListener("click", function () { onSelect(board.slug); });
    fragment.appendChild(tab);
  });
  container.replaceChildren(fragment);
  container.onkeydown = function (event) {
    var tabs = Array.prototype.slice.call(container.querySelectorAll("[role=tab]"));
    var at = tabs.indexOf(document.activeElement);
    if (at < 0) return;
    var next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    var tab = tabs[(next + tabs.length) % tabs.length];
    tab.focus();
    onSelect(tab.dataset.board);
  };
}

export function markSelected(container, panel, slug) {
  container.querySelectorAll("[role=tab]").forEach(function (tab) {
    var selected = tab.dataset.board === slug;
    tab.setAttribute("aria-selected", selected ? "true" : "false");
    tab.tabIndex = selected ? 0 : -1;
  });
  panel.setAttribute("aria-labelledby", "tab-" + slug);
}

// The top rows; `before` maps userId to the rank shown last (null: a fresh board, no
// movement to show). Returns the new map.
export function drawRows(list, empty, entries, changes, before, mine) {
  var changed = {};
  (changes || []).forEach(function (c) { changed[c.userId] = true; });
  var fragment = document.createDocumentFragment();
  var ranks = {};
  entries.forEach(function (entry) {
    var li = document.createElement("li");
    li.className = "row";
    li.dataset.userId = entry.userId;
    li.appendChild(cell("rank", "#" + entry.rank));
    li.appendChild(cell("name", entry.username));
    li.appendChild(cell("score", formatScore(entry.score)));
    if (mine && String(entry.userId) === mine) {
      li.classList.add("mine");
      li.setAttribute("aria-current", "true");
    }
    if (before) {
      var was = before[entry.userId];
      if (was === undefined || was > entry.rank) li.classList.add("moved-up");
      else if (was < entry.rank) li.classList.add("moved-down");
    }
    if (changed[entry.userId]) li.classList.add("changed");
    ranks[entry.userId] = entry.rank;
    fragment.appendChild(li);
  });
  list.replaceChildren(fragment);
  empty.hidden = entries.length > 0;
  return ranks;
}

export function drawWinners(list, empty, entries) {
  var fragment = document.createDocumentFragment();
  entries.slice(0, 3).forEach(function (entry) {
    var li = document.createElement("li");
    li.className = "winner";
    li.appendChild(cell("rank", "#" + entry.rank));
    li.appendChild(cell("name", entry.username));
    li.appendChild(cell("score", formatScore(entry.score)));
    fragment.appendChild(li);
  });
  list.replaceChildren(fragment);
  empty.hidden = entries.length > 0;
}

// "2d 3h 04m", "3h 04m 05s", "4m 05s", "5s".
export function formatLeft(ms) {
  var total = Math.max(0, Math.floor(ms / 1000));
  var days = Math.floor(total / 86400);
  var hours = Math.floor((total % 86400) / 3600);
  var minutes = Math.floor((total % 3600) / 60);
  var seconds = total % 60;
  var two = function (n) { return (n < 10 ? "0" : "") + n; };
  if (days) return days + "d " + hours + "h " + two(minutes) + "m";
  if (hours) return hours + "h " + two(minutes) + "m " + two(seconds) + "s";
  if (minutes) return minutes + "m " + two(seconds) + "s";
  return seconds + "s";
}
