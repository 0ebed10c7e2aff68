// casebridge web app: the few behaviours plain HTML lacks. No framework: htmx does the
// partial updates; this scores an instrument as the worker answers (the server scores
// what is stored) and prints the case summary.
"use strict";

function scoreForm(form) {
  const zones = JSON.parse(form.dataset.zones || "[]");
  let total = 0;
  let answered = 0;
  form.querySelectorAll("input[type=radio]:checked").forEach((input) => {
    total += Number(input.value);
    answered += 1;
  });
  const output = form.querySelector("output[name=total]");
  const zoneText = form.querySelector(".zone");
  const items = form.querySelectorAll("fieldset").length;
  if (output) output.value = String(total);
  if (zoneText) {
    const zone = zones.find((z) => total >= z[0] && total <= z[1]);
    zoneText.textContent = answered === items && zone ? `(${zone[2]})` : `(${answered} of ${items} answered)`;
  }
  if (form.dataset.instrument === "phq9") {
    const item9 = form.querySelector("input[name=item_9]:checked");
    const note = form.querySelector(".risk-note");
    if (note) note.hidden = !(item9 && Number(item9.value) > 0);
  }
}

document.addEventListener("change", (event) => {
  const form = event.target.closest("form.instrument");
  if (form) scoreForm(form);
});

document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) window.print();
});
