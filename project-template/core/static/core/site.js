// Site script, served from STATIC_URL: marks the page as scripted and shows the chosen
// file's size before upload.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("js-status");
  if (status) {
    status.dataset.status = "ready";
    status.textContent = "JavaScript is running.";
  }

  const input = document.querySelector('input[type="file"]');
  const hint = document.getElementById("upload-hint");
  if (input && hint) {
    input.addEventListener("change", () => {
      const file = input.files[0];
      hint.textContent = file ? `${file.name}: ${file.size} bytes` : "";
    });
  }
});
