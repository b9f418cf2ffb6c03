// The browser softphone of a desk whose phone is the browser: JsSIP (jssip.min.js, built from
// npm into our own static files) over a WebSocket straight to Asterisk, so it keeps ringing
// while the line's web server is away; on a cluster to the Kamailio front instead, through
// which either node rings it (the URL comes with the credentials: ws_url).
//
// Reusable: it drives any element with data-softphone="<credentials URL>" (the partial
// _softphone.html), asks that URL (POST, with the session's CSRF token) for this page's
// credentials (a fresh secret each time: a page opened earlier stops registering), registers,
// and rings with answer, mute, hold, hang up and a DTMF keypad. What it shows is text only
// (textContent). Its state is on the element as data-registration and data-call, and as a
// "siaga112:softphone" event on the document (the operator screen polls the call's details
// at once when a call rings). window.siaga112Softphone gives the live call's
// RTCPeerConnection to whoever measures it.
//
// The page holding the softphone is not left: leaving it ends the softphone (JsSIP hangs up
// as the page goes, and a reload cannot take a WebRTC call back), and an unregistered phone
// takes the desk out of its queues after softphone_lost_grace_seconds. So on this page the
// forms are sent in the background and their message is shown here; another console page
// (the incident form, the menu's pages) opens in one work tab beside it; a session that ends
// during a call leaves for the login form only once the call has ended; logging out waits for
// the end of a call; and the browser asks before a page with a call up is reloaded or closed.
"use strict";

(function () {
  const root = document.querySelector("[data-softphone]");
  if (!root) {
    return;
  }
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const parts = {};
  for (const element of root.querySelectorAll("[data-part]")) {
    parts[element.dataset.part] = element;
  }
  const REGISTRATION_TEXT = {
    starting: "Menyiapkan softphone…",
    connecting: "Menyambung ke server telepon…",
    connected: "Tersambung; mendaftar…",
    registered: "Terdaftar — siap menerima panggilan",
    offline: "Jaringan terputus — menyambung ulang otomatis…",
    refused: "Pendaftaran ditolak server telepon",
    unregistered: "Tidak terdaftar",
    failed: "Softphone tidak dapat dimulai",
    elsewhere: "Softphone dipakai di tab lain; panggilan berdering di sana. Muat ulang " +
      "halaman ini untuk memakainya di sini.",
  };
  const CALL_TEXT = {
    idle: "Tidak ada panggilan",
    ringing: "Panggilan masuk",
    talking: "Tersambung",
    held: "Ditahan",
  };
  // Why a call ended other than by a hang-up of the caller or the operator: it is shown in
  // place of "Tidak ada panggilan" (data-call-problem) until the next call rings, since the
  // operator otherwise saw the call vanish and could not tell a dropped caller from one who
  // hung up.
  const ENDED_TEXT = {
    microphone: "Mikrofon ditolak browser; panggilan tidak dapat dijawab. Izinkan " +
      "mikrofon untuk situs ini, lalu muat ulang halaman.",
    media: "Panggilan terputus: suara dari browser Anda tidak sampai ke server telepon " +
      "(jaringan atau Wi-Fi terputus). Penelepon masuk daftar panggil balik.",
    network: "Panggilan berakhir saat koneksi ke server telepon terputus.",
    // Another Q.850 failure cause on the BYE: the bridge hands the operator's leg the cause of
    // the caller's (a carrier whose network lost the caller) as well as Asterisk's own.
    dropped: "Panggilan terputus karena gangguan jaringan telepon",
    browser: "Panggilan gagal di browser",
  };
  const DTMF_KEYS = "123456789*0#";
  const LOGIN_PATH = "/console/login";
  const WORK_TAB = "siaga112-kerja"; // the one tab the console's other pages open in
  const SESSION_ENDED = "Sesi Anda berakhir. Panggilan tetap tersambung; halaman masuk " +
    "dibuka setelah panggilan selesai.";
  const LOGOUT_DURING_CALL = "Selesaikan panggilan dulu: keluar sekarang memutus penelepon.";
  const NOT_SENT = "Gagal mengirim ke server; coba lagi.";
  let ua = null;
  let session = null;
  let networks = [];
  let registration = "starting";
  let callState = "idle";
  let muted = false;
  let held = false;
  let loginAfterCall = false;
  let socketLost = false; // the live call outlived the WebSocket it was set up over
  let probeTimer = 0;
  const remoteAudio = new Audio();
  remoteAudio.autoplay = true;

  // -- what the element shows -------------------------------------------------------------

  function announce() {
    root.dataset.registration = registration;
    root.dataset.call = callState;
    document.dispatchEvent(new CustomEvent("siaga112:softphone", {
      detail: { registration: registration, call: callState },
    }));
  }

  function showRegistration(state, detail) {
    if (registration === "elsewhere") {
      return; // what the stopped softphone still reports is not this tab's phone any more
    }
    registration = state;
    parts.registration.textContent = REGISTRATION_TEXT[state] + (detail ? ": " + detail : "");
    parts.registration.className = "softphone-registration state-" + state;
    announce();
  }

  function showCall(state, caller) {
    callState = state;
    parts.call.textContent = CALL_TEXT[state];
    delete root.dataset.callProblem;
    if (caller !== undefined) {
      parts.caller.textContent = caller;
    }
    if (state === "idle") {
      parts.caller.textContent = "";
      muted = false;
      held = false;
      if (loginAfterCall) {
        window.siaga112Session.ended();
      }
    }
    parts.answer.disabled = state !== "ringing";
    parts.hangup.disabled = state === "idle";
    parts.mute.disabled = state !== "talking" && state !== "held";
    parts.hold.disabled = state !== "talking" && state !== "held";
    parts.mute.textContent = muted ? "Aktifkan suara" : "Bisukan";
    parts.hold.textContent = held ? "Lanjutkan" : "Tahan";
    for (const key of parts.keypad.querySelectorAll("button")) {
      key.disabled = state !== "talking";
    }
    root.classList.toggle("ringing", state === "ringing");
    announce();
  }

  function buildKeypad() {
    for (const tone of DTMF_KEYS) {
      const key = document.createElement("button");
      key.type = "button";
      key.textContent = tone;
      key.dataset.tone = tone;
      key.addEventListener("click", function () {
        if (session !== null && callState === "talking") {
          session.sendDTMF(tone, { transportType: "RFC2833", duration: 160 });
        }
      });
      parts.keypad.appendChild(key);
    }
  }

  // -- media addresses: only the site's networks (softphone_ice_networks) -------------------

  function ipv4(text) {
    const octets = text.split(".");
    if (octets.length !== 4 || !octets.every(function (o) { return /^\d{1,3}$/.test(o); })) {
      return null;
    }
    return octets.reduce(function (value, o) { return value * 256 + Number(o); }, 0);
  }

  function allowed(address) {
    if (!networks.length) {
      return true;
    }
    const value = ipv4(address);
    if (value === null) {
      return false; // IPv6 or an mDNS name: never on a restricted site
    }
    return networks.some(function (network) {
      const [base, bits] = network.split("/");
      const start = ipv4(base);
      const size = Math.pow(2, 32 - Number(bits));
      return start !== null && value >= start && value < start + size;
    });
  }

  // Drops the browser's ICE candidates outside the allowed networks and points the media
  // line at a candidate that stays (Asterisk may send there before ICE has finished).
  function restrictCandidates(sdp) {
    if (!networks.length) {
      return sdp;
    }
    const lines = sdp.split("\r\n");
    const kept = [];
    let firstKept = null;
    for (const line of lines) {
      const match = /^a=candidate:\S+ \d+ (\S+) \d+ (\S+) (\d+) typ/.exec(line);
      if (match) {
        if (!allowed(match[2])) {
          continue;
        }
        if (firstKept === null && match[1].toLowerCase() === "udp") {
          firstKept = { address: match[2], port: match[3] };
        }
      }
      kept.push(line);
    }
    if (firstKept === null) {
      return kept.join("\r\n");
    }
    return kept.map(function (line) {
      let match = /^c=IN IP4 (\S+)$/.exec(line);
      if (match && !allowed(match[1])) {
        return "c=IN IP4 " + firstKept.address;
      }
      match = /^m=audio (\d+) (.*)$/.exec(line);
      if (match && match[1] !== "9") {
        return "m=audio " + firstKept.port + " " + match[2];
      }
      return line;
    }).join("\r\n");
  }

  // -- the call -----------------------------------------------------------------------------

  function attachRemoteAudio(connection) {
    connection.addEventListener("track", function (event) {
      if (event.streams.length) {
        remoteAudio.srcObject = event.streams[0];
        remoteAudio.play().catch(function () { /* plays on the next gesture */ });
      }
    });
  }

  // A withheld caller as the call panel names them (telephony/calls/ids.py caller_shown):
  // Asterisk presents one as "Anonymous" <sip:anonymous@...>, which read "Anonymous
  // <anonymous>" here while the panel below said "(nomor disembunyikan)".
  const WITHHELD_NUMBERS = new Set(JSON.parse(root.dataset.withheldNumbers));
  const WITHHELD_TEXT = root.dataset.withheldText;

  function callerText(request) {
    const from = request.from;
    const number = from.uri && from.uri.user ? from.uri.user : "";
    const name = from.display_name || "";
    if (WITHHELD_NUMBERS.has(number.trim().toLowerCase())) {
      return WITHHELD_TEXT;
    }
    if (name && name !== number) {
      return name + " <" + number + ">";
    }
    return number;
  }

  function incoming(event) {
    const rtc = event.session;
    if (event.originator !== "remote") {
      return;
    }
    if (session !== null) {
      rtc.terminate({ status_code: 486, reason_phrase: "Busy Here" });
      return;
    }
    session = rtc;
    // JsSIP ends a call whenever the WebSocket closes under one of the call's requests (the
    // probe's INFO, whose transaction lingers seconds after its answer, or a hold being
    // agreed): a second network blip, or the softphone reopening its socket after a network
    // change, cut the caller off although the media (straight to Asterisk) went on. An
    // established call now stays; one really gone ends through the probe below or Asterisk's
    // RTP timeout.
    const endOnTransportError = rtc.onTransportError.bind(rtc);
    rtc.onTransportError = function () {
      if (rtc.isEstablished()) {
        socketLost = true;
      } else {
        endOnTransportError();
      }
    };
    rtc.on("peerconnection", function (e) { attachRemoteAudio(e.peerconnection); });
    if (rtc.connection) {
      attachRemoteAudio(rtc.connection);
    }
    rtc.on("sdp", function (e) {
      if (e.originator === "local") {
        e.sdp = restrictCandidates(e.sdp);
      }
    });
    rtc.on("accepted", function () { showCall("talking"); });
    rtc.on("confirmed", function () { showCall(held ? "held" : "talking"); });
    rtc.on("hold", function (e) {
      if (e.originator === "local") {
        held = true;
        showCall("held");
      }
    });
    rtc.on("unhold", function (e) {
      if (e.originator === "local") {
        held = false;
        showCall("talking");
      }
    });
    rtc.on("peerconnection", function (e) { watchIce(rtc, e.peerconnection); });
    if (rtc.connection) {
      watchIce(rtc, rtc.connection);
    }
    function ended(e) {
      if (session === rtc) {
        const problem = endedBecause(e, rtc.siaga112Lost);
        session = null;
        socketLost = false;
        restartWanted = false;
        window.clearTimeout(probeTimer);
        window.clearTimeout(restartTimer);
        remoteAudio.srcObject = null;
        showCall("idle");
        if (problem !== null) {
          parts.call.textContent = ENDED_TEXT[problem.kind] +
            (problem.detail ? " (" + problem.detail + ")" : "") + (problem.kind === "dropped" ||
              problem.kind === "browser" ? "." : "");
          root.dataset.callProblem = problem.kind;
        }
        if (registration === "elsewhere") {
          ua.stop();
        }
      }
    }
    rtc.on("ended", ended);
    rtc.on("failed", ended);
    showCall("ringing", callerText(event.request));
  }

  // Q.850 causes (RFC 3326 Reason header; res_pjsip_rfc3326 puts the channel's hang-up
  // cause on Asterisk's BYE) that mean the call was lost rather than ended by someone. 44 is
  // what Asterisk gives a channel it hangs up for silence (rtp_timeout: no RTP from the
  // browser for softphone_rtp_timeout_seconds).
  const RTP_TIMEOUT_CAUSE = 44;
  const LOST_CAUSES = new Set([27, 34, 38, 41, 42, 44, 47, 102]);

  function q850(message) {
    if (!message || typeof message.getHeaders !== "function") {
      return null;
    }
    for (const reason of message.getHeaders("Reason")) {
      const match = /^\s*Q\.850\s*;(?:.*;)?\s*cause\s*=\s*(\d+)/i.exec(reason);
      if (match) {
        return Number(match[1]);
      }
    }
    return null;
  }

  // What the operator is told when a call ends (null: an ordinary end, said as "Tidak ada
  // panggilan"): the caller or the operator hung up, the ringing stopped (the caller gave up,
  // or Asterisk rang someone else).
  function endedBecause(e, lost) {
    const causes = JsSIP.C.causes;
    if (lost) {
      return { kind: "network" }; // the probe found Asterisk had ended it meanwhile
    }
    if (!e) {
      return null;
    }
    if (e.cause === causes.USER_DENIED_MEDIA_ACCESS) {
      // The browser refused the microphone at the answer (a permission denied once, or a
      // policy): JsSIP fails the call and Asterisk offers the caller to someone else, so the
      // operator saw only "Tidak ada panggilan" and would refuse every call the same way.
      return { kind: "microphone" };
    }
    if (e.originator === "remote" && e.cause === causes.BYE) {
      const cause = q850(e.message);
      if (cause === RTP_TIMEOUT_CAUSE) {
        return { kind: "media" };
      }
      return LOST_CAUSES.has(cause) ? { kind: "dropped", detail: "sebab Q.850 " + cause } : null;
    }
    if (e.cause === causes.CONNECTION_ERROR || e.cause === causes.REQUEST_TIMEOUT ||
        e.cause === causes.DIALOG_ERROR || e.cause === causes.NO_ACK ||
        e.cause === causes.RTP_TIMEOUT) {
      return { kind: "network" };
    }
    if (e.cause === causes.WEBRTC_ERROR || e.cause === causes.BAD_MEDIA_DESCRIPTION ||
        e.cause === causes.INCOMPATIBLE_SDP || e.cause === causes.MISSING_SDP ||
        e.cause === causes.INTERNAL_ERROR) {
      return { kind: "browser", detail: e.cause };
    }
    return null;
  }

  // -- a call through a network change ------------------------------------------------------
  //
  // A laptop that changes Wi-Fi (or whose network drops and comes back) mid-call: the call's
  // media path was bound to the old address, so no audio crossed any more and Asterisk cut
  // the call at its RTP timeout although the browser was back within seconds. The softphone
  // now restarts ICE (a re-INVITE with fresh ICE credentials and candidates, which Asterisk's
  // WebRTC endpoints accept: webrtc = yes gives ice_support) whenever the path may have
  // changed: the browser comes back online (the WebSocket is connected anew first: the old
  // one may be bound to the vanished address), the WebSocket reconnected during a call, or
  // ICE itself reports the path failed (or disconnected for longer than a blip). The
  // re-INVITE from the new WebSocket also points Asterisk's dialog there, so the caller's
  // hang-up reaches the browser again.
  const ICE_DISCONNECTED_GRACE_MS = 2000; // "disconnected" often heals by itself
  const RESTART_RETRY_MS = 1000;
  const RESTART_REFUSALS = 3; // re-INVITEs Asterisk refused before the softphone stops trying
  let restartWanted = false;
  let restartTimer = 0;
  let restarts = 0;

  const watched = new WeakSet();

  function watchIce(rtc, connection) {
    if (watched.has(connection)) {
      return;
    }
    watched.add(connection);
    let disconnectedTimer = 0;
    connection.addEventListener("iceconnectionstatechange", function () {
      window.clearTimeout(disconnectedTimer);
      if (connection.iceConnectionState === "failed") {
        wantRestart(rtc);
      } else if (connection.iceConnectionState === "disconnected") {
        disconnectedTimer = window.setTimeout(function () {
          if (connection.iceConnectionState === "disconnected") {
            wantRestart(rtc);
          }
        }, ICE_DISCONNECTED_GRACE_MS);
      }
    });
  }

  function wantRestart(rtc) {
    if (session !== rtc || rtc.isEnded() || callState === "ringing") {
      return;
    }
    restartWanted = true;
    rtc.siaga112Refusals = 0;
    restartIce();
  }

  // Sends the re-INVITE once it can go: over a connected WebSocket (one sent over a closed
  // socket makes JsSIP end the call) and with no other offer under way (a hold being agreed).
  function restartIce() {
    window.clearTimeout(restartTimer);
    const rtc = session;
    if (!restartWanted || rtc === null || rtc.isEnded()) {
      return;
    }
    if (!ua.isConnected() || !rtc.isEstablished() || !rtc.isReadyToReOffer()) {
      restartTimer = window.setTimeout(restartIce, RESTART_RETRY_MS);
      return;
    }
    restartWanted = false;
    restarts += 1;
    root.dataset.iceRestarts = String(restarts);
    // JsSIP's public renegotiate() hangs the call up when Asterisk refuses the re-INVITE (a
    // glare's 491, say): an emergency call must not end because a repair failed, so the
    // re-INVITE is sent as renegotiate() sends it, with a failure that only tries again.
    rtc._sendReinvite({
      rtcOfferConstraints: { iceRestart: true },
      eventHandlers: {
        succeeded: function () { root.dataset.iceRestarted = String(restarts); },
        failed: function () {
          const connection = rtc.connection;
          if (connection && connection.signalingState === "have-local-offer") {
            connection.setLocalDescription({ type: "rollback" }).catch(function () {});
          }
          rtc.siaga112Refusals = (rtc.siaga112Refusals || 0) + 1;
          if (session === rtc && rtc.siaga112Refusals < RESTART_REFUSALS) {
            restartWanted = true;
            restartTimer = window.setTimeout(restartIce, RESTART_RETRY_MS);
          }
        },
      },
    });
  }

  // The browser is online again (a network change): the WebSocket is opened anew, over the
  // new network, and the call's media path restarted once it is connected. Not while a call
  // rings: its answer must go back over the socket its INVITE came on (a socket that is
  // really dead JsSIP reopens by itself).
  function networkChanged() {
    if (ua === null || registration === "elsewhere" || callState === "ringing") {
      return;
    }
    if (session !== null && !session.isEnded() && callState !== "ringing") {
      restartWanted = true;
    }
    if (ua.isConnected()) {
      ua.transport.disconnect();
      ua.transport.connect();
    }
  }

  // A call that outlived its WebSocket (the network dropped and came back): Asterisk's
  // requests in the call, the caller's hang-up among them, went to the socket that had closed,
  // so the softphone showed the call up for good and refused every next call as busy. Once the
  // softphone is connected again it asks Asterisk about the call every few seconds, with an
  // empty INFO in the call's dialog: a live call answers 200; a refusal ("481 Call/Transaction
  // Does Not Exist", or "500 Unhandled by dialog usages" while Asterisk's dialog outlives the
  // call) ends the call here.
  const PROBE_MS = 3000;

  function probeCall() {
    window.clearTimeout(probeTimer);
    if (session === null || !socketLost) {
      return;
    }
    probeTimer = window.setTimeout(probeCall, PROBE_MS);
    if (!ua.isConnected() || !session.isEstablished()) {
      return;
    }
    const probed = session;
    probed.once("newInfo", function (event) {
      event.info.on("failed", function () {
        if (session === probed && !probed.isEnded()) {
          probed.siaga112Lost = true;
          probed.terminate();
        }
      });
    });
    try {
      probed.sendInfo("application/siaga112-probe", "");
    } catch (error) {
      // Between states (a hold being agreed): the next probe asks.
    }
  }

  function answer() {
    if (session === null || callState !== "ringing") {
      return;
    }
    root.dataset.answeredAt = String(performance.now());
    session.answer({
      mediaConstraints: { audio: true, video: false },
      pcConfig: { iceServers: [] },
    });
  }

  // -- registration -------------------------------------------------------------------------

  function start(credentials) {
    if (registration === "elsewhere") {
      return; // a newer page took the phone while this one asked for its secret
    }
    networks = credentials.ice_networks;
    const socket = new JsSIP.WebSocketInterface(credentials.ws_url);
    ua = new JsSIP.UA({
      sockets: [socket],
      uri: "sip:" + credentials.username + "@" + credentials.realm,
      authorization_user: credentials.username,
      password: credentials.secret,
      realm: credentials.realm,
      display_name: credentials.username,
      register: true,
      register_expires: 120,
      session_timers: false,
      user_agent: "siaga112-softphone",
      // A lost network is retried every few seconds: the desk must ring again soon.
      connection_recovery_min_interval: 1,
      connection_recovery_max_interval: 4,
    });
    ua.on("connecting", function () {
      if (registration !== "offline") {
        showRegistration("connecting");
      }
    });
    ua.on("connected", function () {
      showRegistration("connected");
      probeCall();
      if (socketLost && session !== null) {
        wantRestart(session);
      } else {
        restartIce();
      }
    });
    ua.on("disconnected", function () {
      socketLost = session !== null;
      showRegistration("offline");
    });
    ua.on("registered", function () { showRegistration("registered"); });
    ua.on("unregistered", function () {
      if (registration !== "offline") {
        showRegistration("unregistered");
      }
    });
    ua.on("registrationFailed", function (e) {
      showRegistration(e.cause === JsSIP.C.causes.CONNECTION_ERROR ? "offline" : "refused",
        e.cause);
    });
    ua.on("newRTCSession", incoming);
    ua.start();
  }

  async function credentials() {
    const response = await fetch(root.dataset.softphone, {
      method: "POST", credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
    });
    const body = await response.json();
    if (!response.ok) {
      throw new Error(body.error ? body.error.message : "HTTP " + response.status);
    }
    return body;
  }

  // -- the page stays ------------------------------------------------------------------------

  function talking() {
    return callState === "talking" || callState === "held";
  }

  // A message at the top of the page, as the server's redirect shows one (the same element).
  function showFlash(kind, text, from) {
    const flash = from ? document.importNode(from, true) : document.createElement("p");
    if (!from) {
      flash.className = "flash flash-" + kind;
      flash.setAttribute("role", kind === "error" ? "alert" : "status");
      flash.textContent = text;
    }
    flash.id = "flash";
    const shown = document.getElementById("flash");
    if (shown) {
      shown.replaceWith(flash);
    } else {
      document.querySelector("main").before(flash);
    }
  }

  // The session ended (expired, signed out elsewhere, an admin's change: session.js leaves
  // for the login form, which says why): not through a call, which leaving the page would
  // cut off.
  function holdDuringCall() {
    if (callState === "idle") {
      return false;
    }
    if (!loginAfterCall) { // each poll that hears it stops and says so: one message
      loginAfterCall = true;
      showFlash("error", SESSION_ENDED);
    }
    return true;
  }

  // A form of this page, sent without leaving it. Its answer is this page with the message
  // (shown here; the operator screen polls at once for what changed), the login form (the
  // session ended), or another page (opened in the work tab).
  async function sendHere(form, submitter) {
    if (form.dataset.sending) {
      return; // a double click: one post
    }
    form.dataset.sending = "1";
    form.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(form.action, {
        method: "POST", credentials: "same-origin",
        body: new URLSearchParams(new FormData(form, submitter)),
      });
      const landed = new URL(response.url);
      if (landed.pathname === LOGIN_PATH) {
        window.siaga112Session.ended();
      } else if (landed.pathname !== window.location.pathname) {
        window.open(response.url, WORK_TAB);
      } else {
        const answer = new DOMParser().parseFromString(await response.text(), "text/html");
        const flash = answer.getElementById("flash");
        if (flash) {
          showFlash("", "", flash);
        } else if (!response.ok) {
          showFlash("error", NOT_SENT + " (HTTP " + response.status + ")");
        }
        document.dispatchEvent(new CustomEvent("siaga112:changed"));
      }
    } catch (error) {
      showFlash("error", NOT_SENT);
    } finally {
      delete form.dataset.sending;
      form.removeAttribute("aria-busy");
    }
  }

  // Before forms.js (on the document): what is sent here is not a page's post.
  function keepPage() {
    window.addEventListener("submit", function (event) {
      const form = event.target;
      if (!(form instanceof HTMLFormElement) || form.method !== "post" ||
          form.getAttribute("action") === "/console/logout") {
        return;
      }
      if (form.hasAttribute("data-opens-page")) {
        form.target = WORK_TAB;
        return;
      }
      event.preventDefault();
      sendHere(form, event.submitter);
    }, true);
    // The console's other pages open in the work tab; this page's own address (and the
    // console's root, which leads here) reload it, which the browser asks about during a call.
    document.addEventListener("click", function (event) {
      const link = event.target instanceof Element ? event.target.closest("a[href]") : null;
      if (link === null || link.target) {
        return;
      }
      const to = new URL(link.href);
      if (to.origin === window.location.origin && to.pathname !== window.location.pathname &&
          to.pathname !== "/console/" && to.pathname !== "/console") {
        link.target = WORK_TAB;
      }
    }, true);
    window.addEventListener("beforeunload", function (event) {
      if (talking()) {
        event.preventDefault();
        event.returnValue = "";
      }
    });
  }

  // -- one softphone per browser -----------------------------------------------------------
  //
  // Each page gets a fresh secret and Asterisk keeps one contact per desk, so a second tab of
  // the screen takes the phone: the first still said "Terdaftar — siap menerima panggilan"
  // while calls rang only in the other (and a minute later "Pendaftaran ditolak"). A page
  // that starts tells the others (before it asks for its secret, so theirs still unregisters
  // cleanly); the newest page keeps the phone, the others stop, once a call of theirs has
  // ended, and say where the phone is.
  const opened = { at: performance.timeOrigin + performance.now(), id: Math.random() };

  function newer(a, b) {
    return a.at > b.at || (a.at === b.at && a.id > b.id);
  }

  function takenElsewhere() {
    showRegistration("elsewhere");
    if (ua !== null && session === null) {
      ua.stop();
    }
  }

  function oneSoftphone() {
    if (typeof BroadcastChannel === "undefined") {
      return;
    }
    const tabs = new BroadcastChannel("siaga112-softphone");
    tabs.addEventListener("message", function (event) {
      const other = event.data;
      if (other === null || typeof other.at !== "number" || registration === "elsewhere") {
        return;
      }
      if (newer(other, opened)) {
        takenElsewhere();
      } else {
        tabs.postMessage(opened); // an older page started late: this one keeps the phone
      }
    });
    tabs.postMessage(opened);
  }

  // Logging out of the console unregisters first (the secret stops working right after).
  function stopFirst(form) {
    form.addEventListener("submit", function (event) {
      if (ua === null || form.dataset.softphoneStopped) {
        return;
      }
      event.preventDefault();
      if (talking()) {
        showFlash("error", LOGOUT_DURING_CALL);
        return;
      }
      form.dataset.softphoneStopped = "1";
      let sent = false;
      const done = function () {
        if (!sent) {
          sent = true;
          ua.stop();
          form.submit();
        }
      };
      ua.once("unregistered", done);
      window.setTimeout(done, 1500);
      ua.unregister();
    });
  }

  parts.answer.addEventListener("click", answer);
  parts.hangup.addEventListener("click", function () {
    if (session !== null) {
      session.terminate();
    }
  });
  parts.mute.addEventListener("click", function () {
    if (session === null) {
      return;
    }
    muted = !muted;
    if (muted) {
      session.mute({ audio: true });
    } else {
      session.unmute({ audio: true });
    }
    showCall(callState);
  });
  parts.hold.addEventListener("click", function () {
    if (session === null) {
      return;
    }
    if (held) {
      session.unhold();
    } else {
      session.hold();
    }
  });
  window.addEventListener("offline", function () { showRegistration("offline"); });
  window.addEventListener("online", networkChanged);
  window.addEventListener("pagehide", function () {
    if (ua !== null) {
      ua.stop();
    }
  });
  for (const form of document.querySelectorAll('form[action="/console/logout"]')) {
    stopFirst(form);
  }
  keepPage();
  if (window.name === WORK_TAB) {
    window.name = ""; // the screen opened in the work tab: the next pages open beside it
  }
  window.siaga112Softphone = {
    connection: function () { return session === null ? null : session.connection; },
  };
  window.siaga112Session.hold(holdDuringCall);

  buildKeypad();
  showCall("idle");
  showRegistration("starting");
  if (typeof JsSIP === "undefined") {
    showRegistration("failed", "pustaka SIP tidak termuat");
    return;
  }
  oneSoftphone();
  credentials().then(start).catch(function (error) {
    showRegistration("failed", error.message);
  });
})();
