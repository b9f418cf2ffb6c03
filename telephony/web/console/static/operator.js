// The operator screen: polls GET /api/desk and shows the desk's queues, the call in front of
// the operator, the open incidents a repeat caller's call can be merged into, and the
// caller's recent calls. Every value goes into the page as text
// (textContent), never as markup; forms come from the server-rendered <template>, which
// already carries the session's CSRF token.
"use strict";

(function () {
  const POLL_MS = 1500;
  const zone = document.querySelector('meta[name="timezone"]').content;
  const timeFormat = new Intl.DateTimeFormat("id-ID", {
    timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
  const dateTimeFormat = new Intl.DateTimeFormat("id-ID", {
    timeZone: zone, day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit",
    hour12: false,
  });
  const callPanel = document.getElementById("call");
  const template = document.getElementById("call-template");
  const relatedTemplate = document.getElementById("related-template");
  const queuesBody = document.querySelector("#queues tbody");
  const historyBody = document.querySelector("#history tbody");
  const status = document.getElementById("poll-status");
  const phoneLost = document.getElementById("phone-lost");
  let timer = 0;
  let shownCall = "";
  let shownQueues = "";
  let shownHistory = "";

  function time(value, format) {
    return value ? format.format(new Date(value)) : "-";
  }

  function score(value) {
    return value === null ? "belum dinilai" : value.toFixed(2);
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) {
      td.className = className;
    }
    return td;
  }

  function placeholder(body, columns, text) {
    body.replaceChildren();
    const td = cell(body.insertRow(), text, "muted");
    td.colSpan = columns;
  }

  function ivrText(call) {
    const parts = [];
    if (call.ivr_choice) {
      parts.push("tombol " + call.ivr_choice);
    }
    if (call.ivr_category_label) {
      parts.push(call.ivr_category_label);
    }
    if (call.ivr_skill_label) {
      parts.push(call.ivr_skill_label);
    }
    return parts.length ? parts.join(" · ") : "-";
  }

  function incidentLink(incidentId) {
    const link = document.createElement("a");
    link.href = "/console/incidents/" + encodeURIComponent(incidentId);
    link.textContent = "#" + incidentId;
    return link;
  }

  function placeText(incident) {
    const parts = [incident.village_name || "lokasi belum diisi"];
    if (incident.location_text) {
      parts.push(incident.location_text);
    }
    return parts.join(" — ");
  }

  // The open incidents the call can join, each with its own "Gabungkan" form.
  function renderRelated(section, call, related) {
    if (!related.length) {
      return;
    }
    const list = section.querySelector(".related-list");
    for (const incident of related) {
      const item = relatedTemplate.content.cloneNode(true);
      const values = {
        report_type_label: incident.report_type_label,
        status_label: incident.status_label,
        created_at: time(incident.created_at, dateTimeFormat),
        place: placeText(incident),
        description: incident.description,
      };
      for (const element of item.querySelectorAll("[data-related]")) {
        const field = element.dataset.related;
        if (field === "link") {
          element.replaceWith(incidentLink(incident.incident_id));
        } else {
          element.textContent = values[field];
        }
      }
      const form = item.querySelector("form");
      form.action = form.dataset.action.replace(
        "{id}", encodeURIComponent(incident.incident_id));
      form.elements.call_id.value = call.call_id;
      item.firstElementChild.dataset.incidentId = incident.incident_id;
      list.appendChild(item);
    }
    section.hidden = false;
  }

  function renderQueues(queues) {
    const key = JSON.stringify(queues);
    if (key === shownQueues) {
      return;
    }
    shownQueues = key;
    if (!queues.length) {
      placeholder(queuesBody, 2, "Belum masuk antrean.");
      return;
    }
    queuesBody.replaceChildren();
    for (const member of queues) {
      const row = queuesBody.insertRow();
      row.dataset.queue = member.queue;
      cell(row, member.queue, "mono");
      const text = member.paused && member.pause_label
        ? member.state_label + " (" + member.pause_label + ")" : member.state_label;
      cell(row, text, "state-" + member.state);
    }
  }

  function renderCall(call, related) {
    const key = JSON.stringify([call, related]);
    if (key === shownCall) {
      return;
    }
    shownCall = key;
    if (call === null) {
      const waiting = document.createElement("p");
      waiting.className = "waiting";
      waiting.textContent = "Menunggu panggilan…";
      callPanel.replaceChildren(waiting);
      callPanel.dataset.state = "";
      return;
    }
    const view = template.content.cloneNode(true);
    const values = {
      state_label: call.state_label,
      line: call.line || "-",
      arrived_at: time(call.arrived_at, timeFormat),
      caller_number: call.caller_shown,
      ivr: ivrText(call),
      queue: call.queue || "-",
      answered_at: time(call.answered_at, timeFormat),
      label_text: call.label_text || "belum diberi label",
      incident: "belum ada",
      prank_score: score(call.prank_score),
    };
    for (const element of view.querySelectorAll("[data-field]")) {
      element.textContent = values[element.dataset.field];
    }
    if (call.incident_id !== null) {
      view.querySelector('[data-field="incident"]').replaceChildren(
        incidentLink(call.incident_id));
    }
    const meter = view.querySelector("meter");
    if (call.prank_score === null) {
      meter.remove();
    } else {
      meter.value = call.prank_score;
    }
    const reasons = view.querySelector(".reasons");
    for (const reason of call.prank_reasons) {
      const item = document.createElement("li");
      item.textContent = reason;
      reasons.appendChild(item);
    }
    for (const form of view.querySelectorAll("form[data-action]")) {
      form.action = form.dataset.action.replace("{id}", encodeURIComponent(call.call_id));
    }
    renderRelated(view.querySelector(".related"), call, related);
    callPanel.replaceChildren(view);
    callPanel.dataset.state = call.state;
    callPanel.dataset.callId = call.call_id;
  }

  function renderHistory(history) {
    const key = JSON.stringify(history);
    if (key === shownHistory) {
      return;
    }
    shownHistory = key;
    if (!history.length) {
      placeholder(historyBody, 7, "Belum ada panggilan sebelumnya.");
      return;
    }
    historyBody.replaceChildren();
    for (const call of history) {
      const row = historyBody.insertRow();
      cell(row, time(call.arrived_at, dateTimeFormat));
      cell(row, call.line || "-");
      cell(row, call.ivr_category_label || "-");
      cell(row, call.disposition_label);
      cell(row, call.prank_score === null ? "-" : call.prank_score.toFixed(2));
      cell(row, call.label_text || "-");
      const incident = row.insertCell();
      if (call.incident_id !== null) {
        incident.appendChild(incidentLink(call.incident_id));
      } else {
        incident.textContent = "-";
      }
    }
  }

  // The line took this browser desk out of its queues when its softphone went away.
  function renderPhone(phone) {
    if (phone === null || phone.lost_at === null) {
      phoneLost.hidden = true;
      return;
    }
    phoneLost.textContent = "Pukul " + time(phone.lost_at, timeFormat) + ": " +
      phone.lost_reason + " Antrean yang ditinggalkan: " + phone.lost_queues.join(", ") +
      ". Masuk antrean lagi bila sudah siap.";
    phoneLost.hidden = false;
  }

  async function poll() {
    window.clearTimeout(timer);
    try {
      const response = await fetch("/api/desk", {
        credentials: "same-origin", headers: { Accept: "application/json" },
      });
      if (response.status === 401) {
        // The login form, saying why (a softphone on a call holds it: session.js).
        window.siaga112Session.ended();
        return;
      }
      const body = await response.json();
      if (!response.ok) {
        status.textContent = body.error ? body.error.message : "Gagal memuat data meja.";
      } else {
        status.textContent = "";
        renderQueues(body.queues);
        renderCall(body.call, body.related);
        renderHistory(body.history);
        renderPhone(body.phone);
      }
    } catch (error) {
      status.textContent = "Koneksi ke server terputus; mencoba lagi…";
    }
    window.clearTimeout(timer); // an extra poll in between: still one timer
    timer = window.setTimeout(poll, POLL_MS);
  }

  // The softphone rings: show the call's details now, not at the next poll.
  document.addEventListener("siaga112:softphone", function (event) {
    if (event.detail.call === "ringing") {
      poll();
    }
  });
  // A form the softphone sent without leaving the page: show what it changed now.
  document.addEventListener("siaga112:changed", poll);
  poll();
})();
