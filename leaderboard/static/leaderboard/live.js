// The live page: a tab per active board (`global` first), the selected board's top N over
// its own socket, the time left to its next reset on the server's clock, the last
// period's winners, and the logged-in viewer's own rank even outside the top N. The tab
// choice lives in the URL hash (#board=daily), so a link or a reload keeps it.

import { api, correctClock, serverNow } from "./api.js";
import { initPlayer } from "./player.js";
import { BoardSocket } from "./socket.js";
import {
  drawRows, drawTabs, drawWinners, formatLeft, formatRank, formatScore, markSelected,
} from "./view.js";

var GLOBAL = "global";
// What the page shows when the boards list cannot be read: the all-time board, which
// /ws/leaderboard/ always serves.
var FALLBACK = { slug: GLOBAL, title: "All time", period: "all_time", current: null, nextResetAt: null };
var OVERDUE_MS = 5000;        // no rollover this long after a reset: read the boards again
var REFRESH_EVERY_MS = 15000;

var el = {
  status: document.getElementById("status"),
  tabs: document.getElementById("tabs"),
  panel: document.getElementById("board-panel"),
  period: document.getElementById("period"),
  countdown: document.getElementById("countdown"),
  rows: document.getElementById("rows"),
  empty: document.getElementById("empty"),
  meScore: document.getElementById("me-score"),
  meRank: document.getElementById("me-rank"),
  winners: document.getElementById("winners"),
  winnersPeriod: document.getElementById("winners-period"),
  winnerRows: document.getElementById("winner-rows"),
  winnersEmpty: document.getElementById("winners-empty"),
};
var me = document.body.dataset.userId || null;
var boards = [FALLBACK];
var selected = null;
var socket = null;
var ranks = null;             // userId -> rank shown last on this board (null: fresh)
var shown = [];               // the entries shown last: the winners the moment a period ends
var refreshedAt = 0;

function board() {
  return boards.find(function (b) { return b.slug === selected; }) || FALLBACK;
}

function boardPath(slug) {
  return "/api/v1/boards/" + encodeURIComponent(slug) + "/";
}

function setStatus(state, text) {
  el.status.dataset.state = state;
  el.status.textContent = text;
}

function setMe(score, rank) {
  if (!el.meScore) return;
  el.meScore.textContent = score === null || score === undefined ? "–" : formatScore(score);
  el.meRank.textContent = formatRank(rank);
}

// The viewer's line for the selected board from a list of {board, score, rank}
// (me.update's and the completion's `boards`); global's are the top-level fields.
function meFrom(message, scoreKey) {
  if (selected === GLOBAL) return setMe(message[scoreKey], message.rank);
  var mine = (message.boards || []).find(function (b) { return b.board === selected; });
  if (mine) setMe(mine.score, mine.rank);
}

function ordered(list) {
  var global = list.filter(function (b) { return b.slug === GLOBAL; });
  var rest = list.filter(function (b) { return b.slug !== GLOBAL; });
  return (global.length ? global : [FALLBACK]).concat(rest);
}

async function loadBoards() {
  var sentAt = Date.now();
  try {
    var data = await api("/api/v1/boards/");
    correctClock(data.serverTime, sentAt, Date.now());
    return ordered(data.boards || []);
  } catch (e) {
    return [FALLBACK];
  }
}

function drawPeriod() {
  var b = board();
  var key = b.current && b.current.key;
  var label = {
    all_time: "All time",
    day: key && "Day of " + key,
    week: key && "Week of " + key,
    month: key && "Month " + key,
    season: key ? "Season " + key : "No season running",
  }[b.period];
  el.period.textContent = label || "";
  el.winners.hidden = b.period === "all_time";
  tick();
}

function tick() {
  var b = board();
  var text = "Next reset: never";
  var seconds = "";
  if (b.period !== "all_time" && b.nextResetAt) {
    var left = Date.parse(b.nextResetAt) - serverNow();
    seconds = String(Math.max(0, Math.floor(left / 1000)));
    var what = b.period === "season" ? (b.current ? "Season ends" : "Season starts") : "Next reset";
    text = left > 0 ? what + " in " + formatLeft(left) : what + ": now…";
    if (left < -OVERDUE_MS) refreshBoards();
  } else if (b.period === "season" && !b.current) {
    text = "Season over";
  }
  el.countdown.textContent = text;
  el.countdown.dataset.seconds = seconds;
}

async function loadWinners(slug) {
  if (board().period === "all_time") return;
  try {
    var data = await api(boardPath(slug) + "periods/?limit=1");
    if (slug !== selected) return;
    var last = (data.periods || [])[0];
    el.winnersPeriod.textContent = last ? "(" + last.key + ")" : "";
    drawWinners(el.winnerRows, el.winnersEmpty, last ? last.top || [] : []);
  } catch (e) {
    if (slug === selected) el.winners.hidden = true;
  }
}

// A period that has just ended is still closing (final standings come within a minute):
// its top is read by key, and until that answers the page shows the board it had.
async function showClosed(slug, closed) {
  el.winners.hidden = false;
  el.winnersPeriod.textContent = "(" + closed.key + ")";
  drawWinners(el.winnerRows, el.winnersEmpty, shown);
  try {
    var data = await api(boardPath(slug) + "entries/?limit=3&period=" + encodeURIComponent(closed.key));
    if (slug === selected) drawWinners(el.winnerRows, el.winnersEmpty, data.entries || []);
  } catch (e) {
    // The board as last shown stays: it was the period's final top but for the last ms.
  }
}

async function loadMe(slug) {
  if (!me) return;
  var path = slug === GLOBAL ? "/api/v1/leaderboard/me/?radius=0" : boardPath(slug) + "me/?radius=0";
  try {
    var data = await api(path);
    if (slug === selected && data.me) setMe(data.me.score, data.me.rank);
  } catch (e) {
    // Unranked or not readable: the rows and me.update frames fill the line in.
  }
}

function onBoard(message) {
  var b = board();
  if (message.board && message.board !== selected) return;
  if (message.period && b.current && message.period.key !== b.current.key) {
    // A rollover this socket did not see (it reconnected across the boundary).
    b.current = { key: message.period.key, endsAt: message.period.endsAt };
    b.nextResetAt = message.period.endsAt;
    drawPeriod();
    loadWinners(selected);
  }
  ranks = drawRows(el.rows, el.empty, message.entries, message.changes, ranks, me);
  shown = message.entries;
  var mine = message.entries.find(function (e) { return String(e.userId) === me; });
  if (mine) setMe(mine.score, mine.rank);
}

function onRollover(message) {
  var b = board();
  if (message.board && message.board !== selected) return;
  b.current = message.current || null;
  b.nextResetAt = message.current ? message.current.endsAt : null;
  if (message.closed) showClosed(selected, message.closed);
  ranks = null;
  if (me) setMe(0, null);   // nothing scored in the new period yet
  drawPeriod();
}

function select(slug) {
  if (!boards.some(function (b) { return b.slug === slug; })) slug = GLOBAL;
  if (slug === selected && socket) return;
  selected = slug;
  markSelected(el.tabs, el.panel, slug);
  if (window.location.hash !== "#board=" + slug && (slug !== GLOBAL || window.location.hash)) {
    window.history.replaceState(null, "", "#board=" + slug);
  }
  ranks = null;
  shown = [];
  el.rows.replaceChildren();
  el.empty.hidden = true;
  setMe(null, null);
  drawWinners(el.winnerRows, el.winnersEmpty, []);
  el.winnersEmpty.hidden = true;
  el.winnersPeriod.textContent = "";
  drawPeriod();
  if (socket) socket.close();
  socket = new BoardSocket(slug === GLOBAL ? "/ws/leaderboard/" : "/ws/boards/" + encodeURIComponent(slug) + "/", {
    board: onBoard,
    rollover: onRollover,
    me: function (message) { meFrom(message, "score"); },
    status: setStatus,
  });
  loadWinners(slug);
  loadMe(slug);
}

function fromHash() {
  var match = window.location.hash.match(/^#board=([^&]+)/);
  return match ? decodeURIComponent(match[1]) : GLOBAL;
}

// The boards again, when a reset has passed without a rollover frame (a socket that was
// down at the boundary): the new period and countdown, at most every REFRESH_EVERY_MS.
async function refreshBoards() {
  if (Date.now() - refreshedAt < REFRESH_EVERY_MS) return;
  refreshedAt = Date.now();
  var before = board().current && board().current.key;
  var fresh = await loadBoards();
  if (fresh.length === 1 && fresh[0] === FALLBACK) return;   // unreadable: keep what we have
  var slugs = function (list) { return list.map(function (b) { return b.slug; }).join(); };
  var redraw = slugs(fresh) !== slugs(boards);
  boards = fresh;
  if (redraw) {
    drawTabs(el.tabs, boards, select);
    var slug = selected;
    selected = null;
    select(slug);
    return;
  }
  drawPeriod();
  if ((board().current && board().current.key) !== before) loadWinners(selected);
}

async function start() {
  boards = await loadBoards();
  drawTabs(el.tabs, boards, select);
  select(fromHash());
  window.addEventListener("hashchange", function () { select(fromHash()); });
  window.setInterval(tick, 1000);
  initPlayer(function (done) { meFrom(done, "newScore"); });
}

start();
