// ductwork web UI: confirmations for forms that act on runs, and Mermaid graphs.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("DOMContentLoaded", function () {
  if (window.mermaid && document.querySelector(".mermaid")) {
    window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
    window.mermaid.run({ querySelector: ".mermaid" });
  }
});
