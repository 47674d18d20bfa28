/* The FAQ editor's and the lead view's small behaviours: live checks of an entry while it is written (rules,
   length with the signature, tone, near-duplicates), a slug suggested from the question, and roster selects that
   submit on change. Everything from the server goes in as text (textContent), never as HTML. */
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function item(className, text) {
    var li = document.createElement("li");
    li.className = className;
    li.textContent = text;
    return li;
  }

  function liveChecks() {
    var form = document.getElementById("entry-form");
    var list = document.getElementById("check-list");
    if (!form || !list) return;
    var reply = document.getElementById("check-reply");
    var length = document.getElementById("f-length");
    var timer = null;
    var sequence = 0;

    function field(name) {
      var el = form.elements.namedItem(name);
      return el ? el.value : "";
    }

    function show(result) {
      list.replaceChildren();
      result.problems.forEach(function (p) { list.appendChild(item("bad", p)); });
      result.tone.forEach(function (t) { list.appendChild(item("bad", t)); });
      result.near.forEach(function (n) {
        list.appendChild(item("warn", "Close to " + n.slug + ": \u201c" + n.text + "\u201d (" + n.score.toFixed(2) + ")"));
      });
      if (result.ok && result.near.length === 0) {
        list.appendChild(item("good", "No problems: the rules, the length and the tone check pass."));
      }
      reply.textContent = result.reply || "\u2014";
      length.textContent = result.length + " / " + result.limit + " with " + result.signature;
      length.classList.toggle("over", result.length > result.limit);
    }

    function check() {
      if (!field("question").trim() && !field("answer").trim()) return;
      var mine = ++sequence;
      fetch("/faq/check", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
        body: JSON.stringify({
          slug: field("slug"), question: field("question"), answer: field("answer"),
          paraphrases: field("paraphrases"), tags: field("tags"), language: field("language") || "en"
        })
      }).then(function (response) {
        return response.ok ? response.json() : null;
      }).then(function (result) {
        if (result && mine === sequence) show(result);
      }).catch(function () { /* the server checks again on save and publish */ });
    }

    form.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(check, 300);
    });
    if (field("question").trim() || field("answer").trim()) check();

    var slug = document.getElementById("f-slug");
    var question = document.getElementById("f-question");
    if (slug && question) {
      var touched = slug.value.trim() !== "";
      slug.addEventListener("input", function () { touched = true; });
      question.addEventListener("input", function () {
        if (touched) return;
        var skip = ["a", "an", "the", "i", "my", "me", "we", "is", "are", "to", "of", "in", "on", "for", "and", "or",
                    "do", "does", "how", "can", "what", "when", "where", "why", "it", "this", "you", "your"];
        var words = (question.value.toLowerCase().match(/[a-z0-9]+/g) || []).filter(function (w) {
          return skip.indexOf(w) < 0;
        });
        slug.value = words.slice(0, 5).join("-").slice(0, 60);
      });
    }
  }

  function autoSubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    liveChecks();
    autoSubmit();
  });
})();
