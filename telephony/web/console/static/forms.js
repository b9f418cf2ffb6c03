// Every console page: one submission per click, and what the operator typed into a form kept
// until the server took it.
//
// A double click on a submit button posted the form twice: the first post was carried out,
// the second was refused as stale ("diubah petugas lain") and that refusal is the page the
// operator saw, though their own change had been saved. A second submission of a form
// already on its way is now dropped.
//
// A refused form (someone else changed the incident meanwhile, a tab pasted into the
// location, the session expired during a long call) redirects back and the page is drawn
// again from the server: the 2,000 characters of description typed during the call were
// gone. A form marked data-draft="key" keeps the fields the operator changed in the tab's
// sessionStorage (not localStorage: it ends with the tab, and another tab has its own); the
// draft is dropped once that very form's post comes back with an "ok" message, and is put
// back into the form otherwise (after a refusal, after logging in again, after another form
// of the page was sent), with a note and a way to discard it. Only the fields the operator
// changed are kept, so what another operator saved meanwhile in the other fields stays. A
// draft whose form the page no longer has (the incident was closed meanwhile) is shown as
// text where the page marks it (data-draft-left="key"), to be copied elsewhere.
//
// A refusal is shown at the top of the page; the field it names (data-field on the message)
// is marked invalid, described by the message, and focused, so the operator lands on it.
"use strict";

(function () {
  const DRAFT = "siaga112-draft:";
  const PENDING = "siaga112-draft-pending";
  // A post that never comes back (the operator pressed Stop) must not lock the form.
  const RESEND_AFTER_MS = 10000;

  function storage() {
    try {
      return window.sessionStorage;
    } catch (error) {
      return null;  // storage switched off: the forms work as they did
    }
  }

  function fields(form) {
    return Array.from(form.elements).filter(function (element) {
      if (!element.name) return false;
      if (element.tagName === "TEXTAREA" || element.tagName === "SELECT") return true;
      return element.tagName === "INPUT" && !["hidden", "submit", "button", "file",
        "password"].includes(element.type);
    });
  }

  function defaultOf(element) {
    if (element.tagName !== "SELECT") return element.defaultValue;
    const options = Array.from(element.options);
    const chosen = options.find(function (option) { return option.defaultSelected; });
    return chosen ? chosen.value : (options.length ? options[0].value : "");
  }

  function save(form) {
    const store = storage();
    if (store === null) return;
    const changed = {};
    for (const element of fields(form)) {
      if (element.value !== defaultOf(element)) changed[element.name] = element.value;
    }
    try {
      if (Object.keys(changed).length) {
        store.setItem(DRAFT + form.dataset.draft, JSON.stringify(changed));
      } else {
        store.removeItem(DRAFT + form.dataset.draft);
      }
    } catch (error) {
      // Storage full: the form itself still works.
    }
  }

  function read(key) {
    const store = storage();
    try {
      const draft = store === null ? null : JSON.parse(store.getItem(DRAFT + key) || "null");
      return draft !== null && typeof draft === "object" ? draft : null;
    } catch (error) {
      return null;
    }
  }

  function restore(form, draft) {
    const restored = [];
    for (const element of fields(form)) {
      const value = draft[element.name];
      if (typeof value !== "string" || value === element.value) continue;
      if (element.tagName === "SELECT" && !Array.from(element.options).some(
        function (option) { return option.value === value; })) continue;
      element.value = value;
      element.classList.add("restored");
      restored.push(element);
    }
    if (!restored.length) return;
    const note = document.createElement("p");
    note.className = "draft-note";
    note.setAttribute("role", "status");
    note.textContent = "Isian Anda yang belum tersimpan dikembalikan (ditandai). Periksa, " +
      "lalu simpan lagi.";
    const discard = document.createElement("button");
    discard.type = "button";
    discard.className = "quiet";
    discard.textContent = "Buang isian ini";
    discard.addEventListener("click", function () {
      form.reset();
      for (const element of restored) element.classList.remove("restored");
      note.remove();
      save(form);
    });
    note.append(" ", discard);
    const heading = form.querySelector("h2");
    form.insertBefore(note, heading ? heading.nextSibling : form.firstChild);
    restored[0].focus();
  }

  // The field a refusal names (data-field on the message): marked invalid, described by the
  // message at the top of the page, and focused, in the form that was sent.
  function markRefused(flash, action) {
    const form = Array.from(document.querySelectorAll("form")).find(
      function (candidate) { return candidate.getAttribute("action") === action; });
    const field = form && form.elements.namedItem(flash.dataset.field);
    if (!field || typeof field.focus !== "function") return;
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", "flash");
    field.addEventListener("input", function () {
      field.removeAttribute("aria-invalid");
      field.removeAttribute("aria-describedby");
    }, { once: true });
    field.focus();
  }

  const store = storage();
  let pending = { draft: null, action: null };
  if (store !== null) {
    try {
      pending = Object.assign(pending, JSON.parse(store.getItem(PENDING) || "{}"));
    } catch (error) {
      // Not ours (an older page's plain key): nothing was pending.
    }
    store.removeItem(PENDING);
  }
  const flash = document.getElementById("flash");
  const taken = flash !== null && flash.classList.contains("flash-ok");
  for (const form of document.querySelectorAll("form[data-draft]")) {
    const key = form.dataset.draft;
    if (taken && pending.draft === key) {
      if (store !== null) store.removeItem(DRAFT + key);
    } else {
      const draft = read(key);
      if (draft !== null) restore(form, draft);
    }
    form.addEventListener("input", function () { save(form); });
    form.addEventListener("change", function () { save(form); });
  }
  // A draft whose form is gone: the incident was closed meanwhile (a colleague merged it
  // into another, or cancelled it) and its details form is no longer drawn, so the text the
  // operator typed could not be put back anywhere. It is shown to be copied, until discarded.
  for (const left of document.querySelectorAll("[data-draft-left]")) {
    const key = left.dataset.draftLeft;
    const draft = read(key);
    let shown = false;
    for (const item of left.querySelectorAll("[data-name]")) {
      const value = draft === null ? null : draft[item.dataset.name];
      item.hidden = typeof value !== "string" || value === "";
      if (!item.hidden) {
        item.querySelector("dd").textContent = value;
        shown = true;
      }
    }
    left.hidden = !shown;
    left.querySelector("button").addEventListener("click", function () {
      if (store !== null) store.removeItem(DRAFT + key);
      left.hidden = true;
    });
  }
  if (flash !== null && flash.dataset.field && pending.action) {
    markRefused(flash, pending.action);
  }

  // Bubbling to the document, after any script of the page that handles its form itself
  // (and prevents the default): those posts are theirs. Only posts change anything: a
  // report's period form (a GET) may be sent again at once with other dates.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (event.defaultPrevented || !(form instanceof HTMLFormElement)) return;
    if (form.method !== "post") return;
    if (form.dataset.sending) {
      event.preventDefault();
      return;
    }
    form.dataset.sending = "1";
    form.setAttribute("aria-busy", "true");
    window.setTimeout(function () {
      delete form.dataset.sending;
      form.removeAttribute("aria-busy");
    }, RESEND_AFTER_MS);
    if (form.dataset.draft) save(form);
    try {
      if (store !== null) {
        store.setItem(PENDING, JSON.stringify({
          draft: form.dataset.draft || null, action: form.getAttribute("action"),
        }));
      }
    } catch (error) {
      // Storage full: the draft is then kept, and shown again, until discarded.
    }
  });

  // Back to this page from the browser's cache: its forms may be sent again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    for (const form of document.querySelectorAll("form[data-sending]")) {
      delete form.dataset.sending;
      form.removeAttribute("aria-busy");
    }
  });
})();
