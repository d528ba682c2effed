// The receipt form's signature pad: the patient draws with a finger, a pen or the mouse, and
// the drawing goes with the form as a PNG data URL (nothing drawn, nothing sent). A file, not
// inline script: the pages' Content-Security-Policy allows scripts from 'self' only.
(function () {
  "use strict";
  var form = document.querySelector("form.receipt-form");
  if (!form) { return; }
  var canvas = form.querySelector("canvas.signature-pad");
  var field = form.querySelector("input[name=drawing]");
  var pen = canvas.getContext("2d");
  var drawn = false;
  var last = null;

  function blank() {
    pen.fillStyle = "#fff";
    pen.fillRect(0, 0, canvas.width, canvas.height);
    pen.lineWidth = 2.5;
    pen.lineCap = "round";
    pen.strokeStyle = "#111";
    drawn = false;
  }

  function point(event) {
    var box = canvas.getBoundingClientRect();
    return {
      x: (event.clientX - box.left) * canvas.width / box.width,
      y: (event.clientY - box.top) * canvas.height / box.height
    };
  }

  canvas.addEventListener("pointerdown", function (event) {
    canvas.setPointerCapture(event.pointerId);
    last = point(event);
    event.preventDefault();
  });
  canvas.addEventListener("pointermove", function (event) {
    if (!last) { return; }
    var next = point(event);
    pen.beginPath();
    pen.moveTo(last.x, last.y);
    pen.lineTo(next.x, next.y);
    pen.stroke();
    last = next;
    drawn = true;
  });
  function lift() { last = null; }
  canvas.addEventListener("pointerup", lift);
  canvas.addEventListener("pointercancel", lift);
  form.querySelector("button.clear-pad").addEventListener("click", blank);
  form.addEventListener("submit", function () {
    var method = form.querySelector("input[name=method]:checked");
    field.value = drawn && method && method.value === "drawn" ? canvas.toDataURL("image/png") : "";
  });
  blank();
}());
