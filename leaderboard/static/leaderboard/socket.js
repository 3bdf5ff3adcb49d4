// One board's live socket: a snapshot on connect, coalesced updates after it, a resync
// when a version is skipped, and reconnection with exponential backoff and jitter.
// Selecting another tab closes it for good (close()) and opens the next board's.

var AUTH_CLOSE_CODE = 4401;
var PING_MS = 25000;

export class BoardSocket {
  // handlers: board(message) for snapshots and updates in order, rollover(message),
  // me(message), status(state, text).
  constructor(path, handlers) {
    this.path = path;
    this.handlers = handlers;
    this.version = null;
    this.attempt = 0;
    this.socket = null;
    this.closed = false;
    this.retry = null;
    this.pinger = window.setInterval(this.send.bind(this, { type: "ping" }), PING_MS);
    this.connect();
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }

  close() {
    this.closed = true;
    window.clearInterval(this.pinger);
    window.clearTimeout(this.retry);
    if (this.socket) this.socket.close(1000);
    this.socket = null;
  }

  connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + this.path);
    var self = this;
    this.socket = socket;
    this.handlers.status(
      this.attempt ? "reconnecting" : "connecting",
      this.attempt ? "Reconnecting…" : "Connecting…"
    );
    socket.addEventListener("open", function () {
      if (self.socket !== socket) return;
      self.attempt = 0;
      self.handlers.status("live", "Live");
    });
    socket.addEventListener("message", function (event) {
      if (self.socket === socket) self.receive(event.data);
    });
    socket.addEventListener("close", function (event) {
      if (self.socket !== socket || self.closed) return;   // a tab change closed it
      self.socket = null;
      if (event.code === AUTH_CLOSE_CODE) {
        self.handlers.status("offline", "Please log in again");
        return;
      }
      self.attempt += 1;
      var base = Math.min(30000, 500 * Math.pow(2, self.attempt - 1));
      var delay = base / 2 + Math.random() * base / 2;   // jitter: reconnects spread out
      self.handlers.status("reconnecting", "Reconnecting in " + Math.ceil(delay / 1000) + " s…");
      self.retry = window.setTimeout(self.connect.bind(self), delay);
    });
  }

  receive(data) {
    var message;
    try { message = JSON.parse(data); } catch (e) { return; }
    if (message.type === "leaderboard.snapshot") {
      this.version = message.version;
      this.handlers.board(message);
    } else if (message.type === "leaderboard.update") {
      var version = this.version;
      if (version !== null && message.version !== version + 1 && message.version > version) {
        this.send({ type: "resync" });   // missed an update: ask for the whole board
        return;
      }
      if (version !== null && message.version <= version) return;
      this.version = message.version;
      this.handlers.board(message);
    } else if (message.type === "leaderboard.rollover") {
      // The new period's snapshot follows; its versions are its own.
      this.version = null;
      this.handlers.rollover(message);
    } else if (message.type === "me.update") {
      this.handlers.me(message);
    }
  }
}
