// The ticket page's print button; a kiosk ticket (data-autoprint) prints itself once.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
  if (document.body.dataset.autoprint) {
    window.print();
  }
});
