// Keeps the page in step with /ws: renders each tally it pushes, reconnects when it drops.
(() => {
  const banner = document.getElementById("connection");
  let lastSnapshot = null;
  let retryDelay = 500;

  function setBanner(text) {
    banner.textContent = text;
    banner.hidden = text === "";
  }

  function setBar(fill, percent) {
    fill.dataset.percent = String(percent);
    fill.style.width = `${percent}%`; // CSSOM, so the CSP needs no inline styles
  }

  function render(snapshot) {
    lastSnapshot = snapshot;
    for (const option of snapshot.options) {
      const box = document.querySelector(`[data-option="${option.id}"]`);
      box.querySelector(".label").textContent = option.label;
      box.querySelector(".percent .value").textContent = option.percent.toFixed(1);
      box.querySelector(".votes .value").textContent = String(option.votes);
      box.querySelector(".votes .unit").textContent = option.votes === 1 ? "vote" : "votes";
      setBar(box.querySelector(".fill"), option.percent);
    }
    document.getElementById("total").textContent = snapshot.total_text;
    if (snapshot.stale) {
      setBanner(snapshot.loaded ? "Reconnecting… showing the last results received." : "Connecting…");
    } else {
      setBanner("");
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws`);
    socket.addEventListener("open", () => { retryDelay = 500; });
    socket.addEventListener("message", (event) => render(JSON.parse(event.data)));
    socket.addEventListener("close", () => {
      setBanner(lastSnapshot ? "Reconnecting… showing the last results received." : "Connecting…");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    });
  }

  for (const fill of document.querySelectorAll(".fill")) {
    setBar(fill, Number(fill.dataset.percent));
  }
  connect();
})();
