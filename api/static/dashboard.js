// Draws the delivery charts from the page's own JSON (no request, no caller data in it).
(function () {
  var data = JSON.parse(document.getElementById("chart-data").textContent);
  data.forEach(function (chart) {
    var canvas = document.getElementById(chart.id);
    if (!canvas || !window.Chart) return;
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: chart.labels,
        datasets: [
          { label: "delivered %", data: chart.shares, backgroundColor: "#1b7f3b" },
          { label: "switches", data: chart.switches, backgroundColor: "#a15c00" }
        ]
      },
      options: { responsive: true, maintainAspectRatio: false, animation: false,
                 scales: { y: { beginAtZero: true } } }
    });
  });
})();
