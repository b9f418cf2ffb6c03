// The operator's transfers to agencies (telephony/transfers/): while the operator talks to a
// caller, pick an agency's number and transfer blind, attended or as a three-way conference;
// while a leg is active, its state and the steps it allows (hand over, join, cancel, leave
// the conference). Polls /api/desk/transfers; every value is written as text (textContent),
// never as markup; actions go to the JSON API with the page's CSRF token.
(function () {
  "use strict";

  const POLL_MS = 1500;
  const panel = document.getElementById("transfers");
  if (!panel) {
    return;
  }
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const select = document.getElementById("transfer-number");
  const dispatch = document.getElementById("transfer-dispatch");
  const modes = document.getElementById("transfer-modes");
  const legs = document.getElementById("transfer-legs");
  const status = document.getElementById("transfer-status");
  // The centre's time zone, as every other time on the screen: the browser's own may differ
  // (a supervisor's laptop set to another zone).
  const zone = document.querySelector('meta[name="timezone"]').content;
  const timeFormat = new Intl.DateTimeFormat("id-ID", {
    timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
  let numbersKey = "";
  let modesKey = "";
  let busy = false;

  async function send(path, body) {
    busy = true;
    status.textContent = "Mengirim…";
    try {
      const response = await fetch(path, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json",
                   "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
      });
      if (response.status === 401) {
        window.siaga112Session.ended();
        return;
      }
      const answer = await response.json();
      if (!response.ok) {
        status.textContent = answer.error ? answer.error.message : "Permintaan ditolak.";
      } else if (answer.dispatch_error) {
        status.textContent = "Panggilan dialihkan; pengerahan tidak dicatat: " +
          answer.dispatch_error;
      } else {
        status.textContent = "Terkirim.";
      }
    } catch (error) {
      status.textContent = "Koneksi ke server terputus.";
    } finally {
      busy = false;
      poll(false);
    }
  }

  function renderNumbers(numbers) {
    const key = numbers.map((n) => n.number_id + ":" + n.label + ":" + n.number).join("|");
    if (key === numbersKey) {
      return;
    }
    numbersKey = key;
    const chosen = select.value;
    select.replaceChildren();
    for (const number of numbers) {
      const option = document.createElement("option");
      option.value = String(number.number_id);
      option.textContent = number.agency_name + " - " + number.label + " (" + number.number + ")";
      select.appendChild(option);
    }
    if (chosen) {
      select.value = chosen;
    }
  }

  function renderModes(list, enabled) {
    const key = list.map((m) => m.mode).join("|");
    if (key !== modesKey) {
      modesKey = key;
      modes.replaceChildren();
      for (const mode of list) {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.mode = mode.mode;
        button.textContent = mode.label;
        button.addEventListener("click", () => {
          if (!select.value) {
            status.textContent = "Pilih nomor instansi.";
            return;
          }
          send("/api/desk/transfers", { number_id: Number(select.value), mode: mode.mode,
                                        dispatch_by_phone: dispatch.checked });
        });
        modes.appendChild(button);
      }
    }
    for (const button of modes.querySelectorAll("button")) {
      button.disabled = !enabled || busy;
    }
  }

  function time(value) {
    return value ? timeFormat.format(new Date(value)) : "-";
  }

  function renderLegs(list, stepLabels) {
    legs.replaceChildren();
    for (const leg of list.slice(-3)) {
      const item = document.createElement("li");
      item.dataset.leg = String(leg.leg_id);
      item.dataset.phase = leg.phase;
      const head = document.createElement("div");
      head.textContent = leg.mode_label + " ke " + leg.target + " (" + leg.number + ")";
      const state = document.createElement("div");
      state.className = "muted small";
      state.textContent = leg.phase_label + (leg.outcome_label ? " - " + leg.outcome_label : "") +
        " · diminta " + time(leg.requested_at) + ", berdering " + time(leg.rang_at) +
        ", diangkat " + time(leg.answered_at);
      item.append(head, state);
      if (leg.allowed_steps.length) {
        const row = document.createElement("div");
        row.className = "row";
        for (const step of leg.allowed_steps) {
          const button = document.createElement("button");
          button.type = "button";
          button.dataset.step = step;
          button.textContent = stepLabels[step] || step;
          button.disabled = busy;
          if (step === "cancel" || step === "leave") {
            button.className = "danger";
          }
          button.addEventListener("click", () => {
            send("/api/desk/transfers/" + leg.leg_id + "/steps", { step: step });
          });
          row.appendChild(button);
        }
        item.appendChild(row);
      }
      legs.appendChild(item);
    }
  }

  async function poll(again) {
    try {
      const response = await fetch("/api/desk/transfers", {
        credentials: "same-origin", headers: { Accept: "application/json" },
      });
      if (response.status === 401) {
        window.siaga112Session.ended();  // the login form, saying why
        return;
      }
      if (response.ok) {
        const body = await response.json();
        const active = body.legs.some((leg) => leg.phase !== "ended" &&
                                               leg.phase !== "handed_over");
        panel.hidden = !(body.talking || body.legs.length);
        renderNumbers(body.numbers);
        renderModes(body.modes, body.talking && !active && body.numbers.length > 0);
        const labels = {};
        for (const step of body.steps) {
          labels[step.step] = step.label;
        }
        renderLegs(body.legs, labels);
        dispatch.disabled = body.incident_id === null;
      }
    } catch (error) {
      // The desk's own poll says when the server is unreachable.
    }
    if (again) {
      window.setTimeout(() => poll(true), POLL_MS);
    }
  }

  poll(true);
})();
