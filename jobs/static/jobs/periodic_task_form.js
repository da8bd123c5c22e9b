// django-celery-beat's periodic task form script, as a static file so the Content-Security-Policy needs no
// 'unsafe-inline': the crontab's help text says what the chosen crontab means in words.
"use strict";
(function () {
  const script = document.getElementById("periodic-task-overrides");
  const readableCrontabs = JSON.parse(document.getElementById("readable-crontabs").textContent);
  const originalHelp = script.dataset.crontabHelp || "";
  const translation = document.querySelector(".field-crontab_translation");
  if (translation) translation.style.display = "none";
  const select = document.getElementById("id_crontab");
  const help = document.querySelector(".field-crontab .help");
  if (!select || !help) return;
  select.addEventListener("change", function () {
    help.textContent = originalHelp;
    help.appendChild(document.createElement("br"));
    help.appendChild(document.createTextNode("Translation: " + (readableCrontabs[select.value] || "")));
  });
})();
