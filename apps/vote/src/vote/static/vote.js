// Shows that a click was taken, and stops a double submit while the page reloads.
document.getElementById("ballot").addEventListener("submit", (event) => {
  const chosen = event.submitter;
  document.getElementById("status").textContent = "Recording your vote…";
  // Disable after the browser has read the pressed button's value into the form.
  setTimeout(() => {
    for (const button of document.querySelectorAll("#ballot button")) {
      button.disabled = true;
    }
    if (chosen) chosen.classList.add("chosen");
  }, 0);
});
