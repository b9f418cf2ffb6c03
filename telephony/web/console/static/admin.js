// The admin's version page: a recorded prompt is uploaded to the JSON API (a file cannot
// travel in the url-encoded forms the console otherwise posts), with the session's CSRF token
// in the header; the upload becomes a new version, which the page then opens. Messages go
// into the page as text.
"use strict";

(function () {
  for (const form of document.querySelectorAll("form[data-upload]")) {
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const status = form.querySelector(".upload-status");
      const button = form.querySelector("button");
      const token = form.querySelector('input[name="csrf_token"]').value;
      const body = new FormData();
      body.append("file", form.querySelector('input[type="file"]').files[0]);
      status.textContent = "Mengunggah…";
      button.disabled = true;
      try {
        const response = await fetch(form.action, {
          method: "POST", body: body, credentials: "same-origin",
          headers: { "X-CSRF-Token": token },
        });
        if (response.status === 401) {
          window.siaga112Session.ended();  // the login form, saying why
          return;
        }
        const answer = await response.json();
        if (!response.ok) {
          status.textContent = answer.error ? answer.error.message : "Unggahan ditolak.";
          return;
        }
        window.location.assign("/console/admin/versions/" + answer.version.version_id);
      } catch (error) {
        status.textContent = "Unggahan gagal: " + error.message;
      } finally {
        button.disabled = false;
      }
    });
  }
})();
