// The call-back worklist: polls GET /api/callbacks, keeps the counts current, and says when
// the list no longer matches the page (a caller reached, closed, called back by someone else,
// a new caller), reloading it by itself unless someone is typing a closing note. Every value
// goes into the page as text (textContent), never as markup.
"use strict";

(function () {
  const POLL_MS = 5000;
  const zone = document.querySelector('meta[name="timezone"]').content;
  const dateTime = new Intl.DateTimeFormat("id-ID", {
    timeZone: zone, day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit",
    minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });

  // An instant as the server writes it on this page (DD-MM-YYYY HH:MM:SS in the centre's
  // zone): the browser's own "07/12/2026, 08.03.23" replaced it at the first refresh.
  function local(instant) {
    const part = {};
    dateTime.formatToParts(new Date(instant)).forEach(function (p) {
      part[p.type] = p.value;
    });
    return part.day + "-" + part.month + "-" + part.year + " " + part.hour + ":" +
      part.minute + ":" + part.second;
  }
  const notice = document.getElementById("callback-changed");

  function setText(name, text) {
    const el = document.querySelector('[data-field="' + name + '"]');
    if (el && el.textContent !== text) {
      el.textContent = text;
    }
  }

  // What the page shows of each entry, and what the API says now, in one comparable form.
  function shown() {
    return Array.from(document.querySelectorAll("tr.callback-entry")).map(function (row) {
      return [row.dataset.callId, row.dataset.ringing, row.dataset.attempts].join("/");
    }).join(" ");
  }

  function current(data) {
    return data.entries.map(function (entry) {
      return [entry.call_id, entry.ringing ? "yes" : "no", String(entry.attempts.length)].join("/");
    }).join(" ");
  }

  function typing() {
    const active = document.activeElement;
    if (active && active.closest && active.closest("form")) {
      return true;
    }
    return Array.from(document.querySelectorAll('input[name="note"]')).some(function (input) {
      return input.value !== "";
    });
  }

  async function poll() {
    try {
      const response = await fetch("/api/callbacks", {credentials: "same-origin"});
      if (response.status === 401) {
        window.siaga112Session.ended();  // the login form, saying why
        return;
      }
      if (response.ok) {
        const data = await response.json();
        setText("waiting", String(data.waiting));
        setText("not-possible", String(data.not_possible));
        if (data.oldest_at) {
          setText("oldest", local(data.oldest_at));
        }
        if (current(data) !== shown()) {
          if (typing()) {
            notice.hidden = false;
          } else {
            window.location.reload();
            return;
          }
        }
      }
    } catch (error) {
      // The network is away for a moment: the next poll tries again.
    }
    window.setTimeout(poll, POLL_MS);
  }

  document.getElementById("callback-reload").addEventListener("click", function () {
    window.location.reload();
  });
  window.setTimeout(poll, POLL_MS);
}());
