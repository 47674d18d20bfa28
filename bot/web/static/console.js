/* The agent console's small behaviours: live tone check, inserting a suggestion, SLA countdowns, confirmations,
   and refreshing the queue. Everything shown from the server goes in as text (textContent), never as HTML. */
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function formatDuration(seconds) {
    var s = Math.abs(Math.round(seconds));
    if (s < 60) return s + "s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + "m";
    var h = Math.floor(m / 60);
    m = m % 60;
    if (h < 48) return h + "h " + (m < 10 ? "0" : "") + m + "m";
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }

  function tickSla() {
    var now = Date.now();
    document.querySelectorAll("[data-sla-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-sla-due"));
      if (isNaN(due)) return;
      var left = (due - now) / 1000;
      el.textContent = (left < 0 ? "\u2212" : "") + formatDuration(left);
      el.classList.toggle("sla-breached", left < 0);
      el.classList.toggle("sla-soon", left >= 0 && left < 900);
    });
  }

  function confirmations() {
    document.querySelectorAll("button[data-confirm]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        if (!window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  function replyBox() {
    var form = document.getElementById("reply");
    if (!form) return;
    var box = document.getElementById("reply-body");
    var report = document.getElementById("tone-report");
    var length = document.getElementById("reply-length");
    var ticketId = parseInt(form.getAttribute("data-ticket-id"), 10);
    var timer = null;
    var sequence = 0;

    function show(result) {
      report.replaceChildren();
      length.textContent = result.length + " / " + result.limit;
      length.classList.toggle("over", result.length > result.limit);
      if (!box.value.trim()) return;
      if (result.violations.length === 0) {
        var ok = document.createElement("li");
        ok.className = "tone-ok";
        ok.textContent = "Tone check passed: " + result.text;
        report.appendChild(ok);
      }
      result.violations.forEach(function (violation) {
        var item = document.createElement("li");
        item.className = "tone-" + violation.code;
        item.textContent = violation.message;
        report.appendChild(item);
      });
    }

    // Where the reply goes (a ticket the customer's DM joined offers both): the check follows the choice.
    function replyChannel() {
      var chosen = form.querySelector('input[name="channel"]:checked');
      return chosen ? chosen.value : null;
    }
    form.querySelectorAll('input[name="channel"]').forEach(function (option) {
      option.addEventListener("change", function () {
        var label = form.querySelector(".reply-label-text");
        if (label) label.textContent = option.value === "dm" ? "Reply by DM" : "Reply in public";
        check();
      });
    });

    function check() {
      var mine = ++sequence;
      fetch("/api/tone-check", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
        body: JSON.stringify({ text: box.value, ticket_id: ticketId, channel: replyChannel() })
      }).then(function (response) {
        return response.ok ? response.json() : null;
      }).then(function (result) {
        if (result && mine === sequence) show(result);
      }).catch(function () { /* the server checks again on send */ });
    }

    // Text written before claiming survives the claim's page reload (kept for this tab only).
    var draftKey = "carebot-reply-" + ticketId;
    try {
      var kept = window.sessionStorage.getItem(draftKey);
      window.sessionStorage.removeItem(draftKey);
      if (kept) box.value = kept;
    } catch (e) { /* storage refused: nothing kept */ }
    document.querySelectorAll('form[action$="/claim"]').forEach(function (claim) {
      claim.addEventListener("submit", function () {
        try {
          if (box.value.trim()) window.sessionStorage.setItem(draftKey, box.value);
        } catch (e) { /* storage refused: the text is lost as before */ }
      });
    });
    var send = document.getElementById("send-reply");
    if (send && !send.disabled) box.focus();

    box.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(check, 250);
    });
    if (box.value.trim()) check();

    document.querySelectorAll("a.insert[data-insert-text]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        box.value = link.getAttribute("data-insert-text");
        box.focus();
        check();
      });
    });
  }

  function watchTicket() {
    var thread = document.querySelector(".thread[data-fingerprint]");
    var banner = document.getElementById("new-activity");
    if (!thread || !banner) return;
    var ticketId = thread.getAttribute("data-ticket-id");
    var seen = thread.getAttribute("data-fingerprint");
    setInterval(function () {
      if (document.visibilityState !== "visible") return;
      fetch("/api/tickets/" + encodeURIComponent(ticketId), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (ticket) {
          if (ticket && ticket.fingerprint !== seen) banner.hidden = false;
        })
        .catch(function () { /* offline for a moment: try again on the next tick */ });
    }, 10000);
  }

  function autoRefresh() {
    var table = document.querySelector("[data-auto-refresh]");
    if (!table) return;
    var seconds = parseInt(table.getAttribute("data-auto-refresh"), 10) || 30;
    var last = Date.now();
    ["mousemove", "keydown", "scroll"].forEach(function (name) {
      document.addEventListener(name, function () { last = Date.now(); }, { passive: true });
    });
    setInterval(function () {
      if (Date.now() - last > 5000 && document.visibilityState === "visible") window.location.reload();
    }, seconds * 1000);
  }

  function postTo(action) {
    var form = document.createElement("form");
    form.method = "post";
    form.action = action;
    var token = document.createElement("input");
    token.type = "hidden";
    token.name = "csrf_token";
    token.value = csrfToken;
    form.appendChild(token);
    document.body.appendChild(form);
    form.submit();
  }

  function nextTicket() {
    // The ticket after this one in the queue's order (the first one from elsewhere).
    var thread = document.querySelector(".thread[data-ticket-id]");
    var current = thread ? parseInt(thread.getAttribute("data-ticket-id"), 10) : null;
    fetch("/api/queue", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (queue) {
        if (!queue || !queue.tickets.length) return;
        var ids = queue.tickets.map(function (t) { return t.id; });
        var at = ids.indexOf(current);
        var next = ids[(at + 1) % ids.length];
        if (next !== current) window.location.href = "/tickets/" + next;
      })
      .catch(function () { /* offline: stay */ });
  }

  function shortcuts() {
    var help = document.getElementById("shortcuts");
    if (!help) return;  // only agents and leads have them
    document.addEventListener("keydown", function (event) {
      var box = document.getElementById("reply-body");
      if ((event.ctrlKey || event.metaKey) && event.key === "Enter" && box && event.target === box) {
        var send = document.getElementById("send-reply");
        if (send && !send.disabled) {
          event.preventDefault();
          send.form.requestSubmit(send);
        }
        return;
      }
      var target = event.target;
      var typing = target && (/^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName) || target.isContentEditable);
      if (typing || event.ctrlKey || event.metaKey || event.altKey || help.open) return;
      var resolve = document.querySelector('[data-shortcut="r"]');  // not "Resolve without reply"
      var search = document.getElementById("queue-search");
      if (event.key === "?") help.showModal();
      else if (event.key === "t") postTo("/queue/take-next");
      else if (event.key === "n") nextTicket();
      else if (event.key === "r" && resolve) resolve.click();
      else if (event.key === "q") window.location.href = "/queue";
      else if (event.key === "/" && search) search.focus();
      else if (event.key === "e" && box && !box.disabled) box.focus();
      else return;
      event.preventDefault();
    });
  }

  function beep() {
    try {
      var audio = new (window.AudioContext || window.webkitAudioContext)();
      var tone = audio.createOscillator();
      var gain = audio.createGain();
      tone.frequency.value = 880;
      gain.gain.value = 0.08;
      tone.connect(gain);
      gain.connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + 0.15);
    } catch (e) { /* no audio here */ }
  }

  function notify(title, body, href) {
    if (window.localStorage && localStorage.getItem("carebot-sound") === "on") beep();
    if (window.Notification && Notification.permission === "granted") {
      var note = new Notification(title, { body: body, tag: href });
      note.onclick = function () { window.focus(); window.location.href = href; };
    }
  }

  function notificationPrefs() {
    var desktop = document.getElementById("notify-desktop");
    var sound = document.getElementById("notify-sound");
    if (desktop) {
      var showDesktop = function () {
        var state = window.Notification ? Notification.permission : "unsupported";
        desktop.textContent = state === "granted" ? "Desktop notifications on"
          : state === "denied" ? "Desktop notifications blocked by the browser"
          : state === "unsupported" ? "No desktop notifications in this browser" : "Turn on desktop notifications";
        desktop.disabled = state !== "default";
      };
      showDesktop();
      desktop.addEventListener("click", function () {
        if (window.Notification) Notification.requestPermission().then(showDesktop);
      });
    }
    if (sound) {
      var showSound = function () {
        var on = localStorage.getItem("carebot-sound") === "on";
        sound.textContent = on ? "Sound on" : "Sound off";
        sound.setAttribute("aria-pressed", on ? "true" : "false");
      };
      showSound();
      sound.addEventListener("click", function () {
        localStorage.setItem("carebot-sound", localStorage.getItem("carebot-sound") === "on" ? "off" : "on");
        showSound();
      });
    }
  }

  function liveEvents() {
    // The queue's count in the tab title and notifications, from server-sent events (no reload).
    if (!document.getElementById("shortcuts") || !window.EventSource) return;  // agents and leads only
    var baseTitle = document.title;
    var seen = null;
    var source = new EventSource("/api/events");
    source.onmessage = function (event) {
      var state;
      try { state = JSON.parse(event.data); } catch (e) { return; }
      var waiting = state.counts.waiting;
      document.title = (waiting > 0 ? "(" + waiting + ") " : "") + baseTitle;
      var mine = state.newest_on_mine;
      if (seen !== null) {
        if (waiting > seen.waiting) notify("A new ticket is waiting", waiting + " waiting in the queue", "/queue");
        if (mine && (!seen.mine || mine.message_id !== seen.mine.message_id)) {
          notify("Ticket " + mine.ticket_id + ": the customer wrote again", "", "/tickets/" + mine.ticket_id);
        }
      }
      seen = { waiting: waiting, mine: mine };
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    shortcuts();
    notificationPrefs();
    liveEvents();
    tickSla();
    setInterval(tickSla, 1000);
    confirmations();
    replyBox();
    watchTicket();
    autoRefresh();
  });
})();
