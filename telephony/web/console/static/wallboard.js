// The supervisor's wallboard: one WebSocket (/api/wallboard/live) pushes the whole board on
// every change; this draws it and keeps the clocks (waits, time in state) ticking between
// messages. Every value goes into the page as text (textContent), never as markup. A
// supervisor's page (not an admin's) also has Dengarkan / Bisikkan / Sela buttons on each
// operator talking now: they POST /api/supervision and show the answer as text.
"use strict";

(function () {
  const TICK_MS = 1000;
  const RETRY_MS = [1000, 2000, 5000, 10000];
  // The server pushes at least every 5 s (HEARTBEAT_SECONDS). A network gone silent (a
  // cable, a sleeping laptop, a proxy that stalls) closes nothing for minutes: without a
  // message for this long the board is no longer live, whatever the socket says.
  const SILENT_MS = 12000;
  // The socket's close code for a session that ended: the login form, saying why
  // (session.js; a listen-in running was hung up too).
  const SESSION_ENDED = 4401;
  const zone = document.querySelector('meta[name="timezone"]').content;
  const clock = new Intl.DateTimeFormat("id-ID", {
    timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
  const hourMinute = new Intl.DateTimeFormat("id-ID", {
    timeZone: zone, hour: "2-digit", minute: "2-digit", hour12: false,
  });
  const status = document.getElementById("status");
  // Only a supervisor's page has these: the buttons to listen in on an operator's call.
  const supervision = document.querySelector('meta[name="supervision"]');
  const SPY_MODES = [["listen", "Dengarkan"], ["whisper", "Bisikkan"], ["barge", "Sela"]];
  let board = null;
  let skew = 0; // server clock minus ours, from the last message
  let attempts = 0;
  let live = false; // a message came on the open socket: the picture is current

  function field(name) {
    return document.querySelector('[data-field="' + name + '"]');
  }

  function setText(name, text) {
    const el = field(name);
    if (el && el.textContent !== text) {
      el.textContent = text;
    }
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function duration(seconds) {
    const whole = Math.max(0, Math.floor(seconds));
    const m = Math.floor(whole / 60);
    const s = whole % 60;
    if (m >= 60) {
      return Math.floor(m / 60) + ":" + String(m % 60).padStart(2, "0") + ":" + String(s).padStart(2, "0");
    }
    return m + ":" + String(s).padStart(2, "0");
  }

  function percent(share) {
    return share.percent === null ? "-" : share.percent.toFixed(1).replace(".", ",") + "%";
  }

  function serverNow() {
    return Date.now() + skew;
  }

  function since(instant) {
    return (serverNow() - Date.parse(instant)) / 1000;
  }

  // Which shift the tiles count, and since when "today" counts: after midnight the
  // operational day is still the one that began at the first shift's start the day before.
  function drawPeriods(data) {
    const shift = data.shift;
    setText("shift-name", shift ? "Sif " + shift.name + " " +
      hourMinute.format(new Date(shift.started_at)) + "–" +
      hourMinute.format(new Date(shift.ends_at)) : "Sif -");
    const today = data.today;
    setText("today-since", today ? today.day.slice(8, 10) + "-" + today.day.slice(5, 7) + " " +
      hourMinute.format(new Date(today.started_at)) : "-");
  }

  function drawCounters(data) {
    const shift = data.shift;
    const f = shift ? shift.figures : null;
    drawPeriods(data);
    setText("shift-answered", f ? String(f.answered) : "-");
    setText("shift-abandoned", f ? String(f.abandoned) : "-");
    (f ? f.service_levels : []).forEach(function (level) {
      setText("shift-level-" + level.seconds, percent(level));
    });
    setText("shift-prank", f ? percent(f.prank_share) : "-");
    setText("overdue", String(data.overdue_incidents.length));
    document.getElementById("tile-overdue").classList.toggle("alert", data.overdue_incidents.length > 0);
    const callbacks = data.callbacks;
    setText("callbacks", callbacks ? String(callbacks.waiting) : "-");
    document.getElementById("tile-callbacks").classList.toggle("alert", !!callbacks && callbacks.waiting > 0);
    const t = data.today ? data.today.figures : null;
    setText("today", t ? [
      t.calls + " panggilan",
      t.offered + " ke antrean",
      t.answered + " dijawab",
      t.abandoned + " ditinggalkan",
    ].concat(t.service_levels.map(function (level) {
      return percent(level) + " ≤ " + level.seconds + " dtk";
    })).concat([percent(t.prank_share) + " iseng/diam"]).join(" · ") : "-");
    if (shift) {
      document.getElementById("today").dataset.shift = shift.name;
    }
  }

  function drawQueues(data) {
    const box = field("queues");
    box.replaceChildren();
    if (!data.queues.length) {
      box.appendChild(el("p", "muted", "Tidak ada antrean aktif."));
    }
    data.queues.forEach(function (queue) {
      const row = el("div", "wb-queue" + (queue.callers.length ? " has-callers" : ""));
      row.dataset.queue = queue.queue;
      const head = el("div", "wb-queue-head");
      head.appendChild(el("span", "wb-queue-name", queue.queue));
      head.appendChild(el("span", "wb-queue-count", String(queue.callers.length)));
      head.appendChild(el("span", "wb-queue-members muted small",
        queue.available + " siap dari " + queue.members + " operator"));
      row.appendChild(head);
      const callers = el("ol", "wb-callers");
      queue.callers.forEach(function (caller) {
        const item = el("li", "wb-caller");
        item.dataset.joinedAt = caller.joined_at;
        item.appendChild(el("span", "wb-position", "#" + caller.position));
        item.appendChild(el("span", "wb-wait", duration(since(caller.joined_at))));
        item.appendChild(el("span", "wb-what small",
          [caller.line, caller.category_label, caller.node].filter(Boolean).join(" · ") || "-"));
        callers.appendChild(item);
      });
      row.appendChild(callers);
      box.appendChild(row);
    });
  }

  function drawOperators(data) {
    const grid = field("operators");
    grid.replaceChildren();
    if (!data.operators.length) {
      grid.appendChild(el("p", "muted", "Tidak ada operator di antrean."));
    }
    data.operators.forEach(function (op) {
      const card = el("div", "wb-operator wb-" + op.state);
      card.dataset.operator = op.operator;
      card.dataset.state = op.state;
      card.appendChild(el("span", "wb-op-name", op.name));
      card.appendChild(el("span", "wb-op-state", op.state_label + (op.state === "paused" && op.reason_label ? " · " + op.reason_label : "")));
      const time = el("span", "wb-op-since", duration(since(op.since)));
      time.dataset.since = op.since;
      card.appendChild(time);
      if (supervision && op.state === "talking") {
        card.appendChild(spyButtons(op.operator));
      }
      grid.appendChild(card);
    });
    const c = data.operator_counts;
    setText("operator-counts", [
      c.idle + " siap", c.ringing + " berdering", c.talking + " bicara",
      c.wrapup + " menyelesaikan", c.paused + " jeda", c.unavailable + " tak tersedia",
    ].join(" · "));
  }

  function spyButtons(operator) {
    const box = el("div", "wb-op-actions");
    SPY_MODES.forEach(function (mode) {
      const button = el("button", "wb-spy", mode[1]);
      button.type = "button";
      button.dataset.mode = mode[0];
      button.dataset.operator = operator;
      box.appendChild(button);
    });
    return box;
  }

  // The Originate is audited, then the supervisor's own phone rings: the answer says so.
  async function spy(button) {
    const result = document.getElementById("supervision-result");
    result.dataset.state = "pending";
    result.textContent = "Meminta Asterisk…";
    try {
      const response = await fetch(supervision.content, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content,
        },
        body: JSON.stringify({ operator: button.dataset.operator, mode: button.dataset.mode }),
      });
      if (response.status === 401) {
        window.siaga112Session.ended();
        return;
      }
      const body = await response.json();
      result.dataset.state = response.ok ? "ok" : "error";
      result.textContent = response.ok ? body.message
        : (body.error ? body.error.message : "Permintaan ditolak.");
    } catch (error) {
      result.dataset.state = "error";
      result.textContent = "Koneksi ke server terputus; coba lagi.";
    }
  }

  function drawOverdue(data) {
    const list = field("overdue-list");
    list.replaceChildren();
    if (!data.overdue_incidents.length) {
      list.appendChild(el("li", "muted", "Tidak ada."));
    }
    data.overdue_incidents.forEach(function (incident) {
      const item = el("li", "wb-overdue-item");
      item.dataset.incident = String(incident.incident_id);
      item.appendChild(el("strong", "", "#" + incident.incident_id));
      item.appendChild(el("span", "", incident.report_type_label + " · " + incident.priority_label + " · " + incident.status_label));
      const late = el("span", "wb-late", "lewat " + duration(since(incident.due_at)));
      late.dataset.since = incident.due_at;
      item.appendChild(late);
      list.appendChild(item);
    });
  }

  function tick() {
    if (!board || !live) {
      return; // an old picture keeps the waits it had: they would run as if it were live
    }
    let waiting = 0;
    let longest = null;
    board.queues.forEach(function (queue) {
      waiting += queue.callers.length;
      queue.callers.forEach(function (caller) {
        const wait = since(caller.joined_at);
        if (longest === null || wait > longest.wait) {
          longest = { wait: wait, queue: queue.queue };
        }
      });
    });
    setText("waiting", String(waiting));
    document.getElementById("tile-waiting").classList.toggle("alert", waiting > 0);
    setText("longest", longest ? duration(longest.wait) : "-");
    setText("longest-queue", longest ? "Tunggu terlama · " + longest.queue : "Tunggu terlama");
    const callbacks = board.callbacks;
    setText("callbacks-oldest", callbacks && callbacks.oldest_at
      ? "Panggilan balik · terlama " + duration(since(callbacks.oldest_at)) : "Panggilan balik");
    document.querySelectorAll(".wb-caller").forEach(function (item) {
      item.querySelector(".wb-wait").textContent = duration(since(item.dataset.joinedAt));
    });
    document.querySelectorAll("[data-since]").forEach(function (node) {
      const prefix = node.classList.contains("wb-late") ? "lewat " : "";
      node.textContent = prefix + duration(since(node.dataset.since));
    });
  }

  function draw(data) {
    board = data;
    live = true;
    document.querySelector("main").classList.remove("stale");
    skew = Date.parse(data.generated_at) - Date.now();
    drawCounters(data);
    drawQueues(data);
    drawOperators(data);
    drawOverdue(data);
    tick();
    const notes = ["Diperbarui " + clock.format(new Date(data.generated_at))];
    if (!data.connected) {
      notes.push("Asterisk tidak tersambung: antrean dan operator mungkin tidak terkini");
    }
    if (data.counters_stale) {
      // The shift's figures go on from Asterisk's events; what the database gives does not.
      notes.push("basis data tidak terjangkau: insiden lewat target dan panggilan balik per " +
        (data.refreshed_at ? clock.format(new Date(data.refreshed_at)) : "-"));
    }
    status.textContent = notes.join(" · ");
    status.dataset.state = data.connected && !data.counters_stale ? "live" : "degraded";
  }

  // The picture on the page is no longer live: it is dimmed, its clocks stop, and the status
  // says since when it is as it was.
  function lost(wait) {
    live = false;
    document.querySelector("main").classList.add("stale");
    status.dataset.state = "disconnected";
    status.textContent = "Sambungan terputus" + (board ? "; papan tidak terkini, keadaan pukul " +
      clock.format(new Date(board.generated_at)) : "") + "; menyambung lagi dalam " +
      (wait / 1000) + " detik…";
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/api/wallboard/live");
    let over = false; // this socket is done with: a late event of it changes nothing
    let heard = false; // the server sends the board at once: nothing heard, no handshake
    let silence = null;

    function retry() {
      if (over) {
        return;
      }
      over = true;
      clearTimeout(silence);
      const wait = RETRY_MS[Math.min(attempts, RETRY_MS.length - 1)];
      attempts += 1;
      lost(wait);
      setTimeout(connect, wait);
    }

    // Also while connecting: an attempt that hangs is retried like a silent socket.
    function listen() {
      clearTimeout(silence);
      silence = setTimeout(function () {
        retry();
        socket.close();
      }, SILENT_MS);
    }

    listen();
    socket.onopen = function () {
      attempts = 0;
    };
    socket.onmessage = function (event) {
      if (over) {
        return;
      }
      heard = true;
      listen();
      draw(JSON.parse(event.data));
    };
    socket.onclose = function (event) {
      if (event.code === SESSION_ENDED) {
        over = true;
        clearTimeout(silence);
        window.siaga112Session.ended();
        return;
      }
      if (!heard) {
        loggedOut();
      }
      retry();
    };
  }

  // A refused handshake shows the page no status: a session that ended while the line or the
  // network was away (4401 comes only on an open socket) would have it retry for ever. The
  // session says whether to log in again; an unreachable line keeps the retries going.
  function loggedOut() {
    fetch("/api/session", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) {
          window.siaga112Session.ended();
        }
      })
      .catch(function () {});
  }

  if (supervision) {
    // One listener for the grid: its cards are redrawn on every message.
    field("operators").addEventListener("click", function (event) {
      const button = event.target.closest("button.wb-spy");
      if (button) {
        spy(button);
      }
    });
  }
  connect();
  setInterval(tick, TICK_MS);
})();
