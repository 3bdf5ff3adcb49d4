// The player panel of the embedded default: pick an action type, start it, complete it
// once the server's earliestCompletionAt has passed, and see the result (or the error
// envelope's message). The action token is single use: after any answer to a completion
// the player starts again.

import { api, serverNow } from "./api.js";
import { formatLeft, formatRank, formatScore } from "./view.js";

export function initPlayer(onResult) {
  var form = document.getElementById("player-form");
  if (!form) return;
  var select = document.getElementById("player-action");
  var start = document.getElementById("player-start");
  var complete = document.getElementById("player-complete");
  var wait = document.getElementById("player-wait");
  var result = document.getElementById("player-result");
  var started = null;   // {actionId, actionToken, earliest (ms, server clock)}
  var timer = null;

  function show(text, kind) {
    result.textContent = text;
    result.dataset.kind = kind;
  }

  function tick() {
    if (!started) {
      complete.disabled = true;
      wait.textContent = "";
      return;
    }
    var left = started.earliest - serverNow();
    complete.disabled = left > 0;
    wait.textContent = left > 0 ? "Complete in " + formatLeft(left + 999) : "Ready to complete.";
  }

  function reset() {
    started = null;
    window.clearInterval(timer);
    tick();
  }

  api("/api/v1/actions/").then(function (actions) {
    var fragment = document.createDocumentFragment();
    (Array.isArray(actions) ? actions : actions.results || []).forEach(function (action) {
      var option = document.createElement("option");
      option.value = action.id;
      option.textContent = action.name + " (+" + action.reward + ")";
      fragment.appendChild(option);
    });
    select.replaceChildren(fragment);
    start.disabled = select.options.length === 0;
    if (select.options.length === 0) show("No action types yet.", "info");
  }, function (error) {
    start.disabled = true;
    show(error.message, "error");
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var actionId = select.value;
    if (!actionId) return;
    reset();
    start.disabled = true;
    api("/api/v1/actions/" + encodeURIComponent(actionId) + "/start/", { method: "POST" })
      .then(function (body) {
        started = {
          actionId: body.actionId,
          actionToken: body.actionToken,
          earliest: Date.parse(body.earliestCompletionAt) || serverNow(),
        };
        show("Started " + (select.selectedOptions[0] || {}).textContent + ".", "info");
        timer = window.setInterval(tick, 250);
        tick();
      }, function (error) {
        show(error.message, "error");
      })
      .finally(function () { start.disabled = false; });
  });

  complete.addEventListener("click", function () {
    if (!started) return;
    var body = { actionId: started.actionId, actionToken: started.actionToken };
    reset();
    api("/api/v1/actions/complete/", { method: "POST", body: body }).then(function (done) {
      show(
        "+" + formatScore(done.delta) + " points: score " + formatScore(done.newScore) +
          ", rank " + formatRank(done.rank) + (done.flagged ? " (flagged for review)" : ""),
        "success"
      );
      onResult(done);
    }, function (error) {
      show(error.message, "error");
    });
  });
}
