// Every console page: a session that ends while a page is open (an in-page request answered
// 401, the wallboard's socket closed with 4401) leaves by the console's home, not straight to
// the login form. The line redirects from there to the form saying why, when an admin's
// change ended the session (another role, the account disabled, a new password); a page that
// went straight to the form left the operator at a bare "Silakan masuk" with no word of why.
// One way for every page script (window.siaga112Session.ended), so no page leaves otherwise.
//
// A page that must not be left yet (the softphone during a call: leaving cuts the caller off)
// holds the leaving: asked first, it says so, and calls ended() again once it may leave.
"use strict";

(function () {
  const LOG_IN_AGAIN = "/console/";
  let holder = null;

  function ended() {
    if (holder !== null && holder()) {
      return;
    }
    window.location.assign(LOG_IN_AGAIN);
  }

  window.siaga112Session = {
    ended: ended,
    hold: function (held) { holder = held; },
  };
})();
