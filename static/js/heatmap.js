"use strict";
// A 12x12 difference matrix on a <canvas>, drawn as report.html draws it: the diverging scale of
// /static/css/palette.css (linear in RGB from --scale-negative at -1 through --scale-neutral at 0
// to --scale-positive at +1, as stream/report/charts.py), masked pairs faded over grey, no data
// hatched, synkinesis pairs framed. The legend is HTML (.scale-legend in clinician.html).
const Palette = (() => {
  const css = getComputedStyle(document.documentElement);
  const hex = (name) => css.getPropertyValue(name).trim();
  const rgb = (h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16));
  const colours = {
    negative: rgb(hex("--scale-negative")), neutral: rgb(hex("--scale-neutral")), positive: rgb(hex("--scale-positive")),
    masked: hex("--masked"), noData: hex("--no-data"),
  };
  function diverging(value) {
    const v = Math.max(-1, Math.min(1, value));
    const end = v > 0 ? colours.positive : colours.negative;
    const c = colours.neutral.map((m, k) => Math.round(m + (end[k] - m) * Math.abs(v)));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }
  return { diverging, colours };
})();

function drawHeatmap(canvas, labels, matrix, mask, pairs) {
  const ctx = canvas.getContext("2d");
  const n = labels.length, pad = 42, size = (Math.min(canvas.width, canvas.height) - pad) / n;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = "#333";
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  labels.forEach((l, i) => ctx.fillText(l, pad - 4, pad + (i + 0.5) * size));
  labels.forEach((l, j) => {
    ctx.save(); ctx.translate(pad + (j + 0.5) * size, pad - 4); ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left"; ctx.fillText(l, 0, 0); ctx.restore();
  });
  const hatch = document.createElement("canvas");
  hatch.width = hatch.height = 6;
  const h = hatch.getContext("2d");
  h.fillStyle = Palette.colours.noData; h.fillRect(0, 0, 6, 6);
  h.strokeStyle = "#999"; h.beginPath(); h.moveTo(0, 6); h.lineTo(6, 0); h.stroke();
  const noData = ctx.createPattern(hatch, "repeat");
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = matrix && matrix[i] ? matrix[i][j] : null;
      const kept = !mask || (mask[i] && mask[i][j]);
      const x = pad + j * size, y = pad + i * size;
      if (!kept) { ctx.fillStyle = Palette.colours.masked; ctx.fillRect(x, y, size - 1, size - 1); }
      ctx.globalAlpha = kept ? 1 : 0.3;
      ctx.fillStyle = v === null || v === undefined ? noData : Palette.diverging(v);
      ctx.fillRect(x, y, size - 1, size - 1);
      ctx.globalAlpha = 1;
    }
  }
  const index = Object.fromEntries(labels.map((l, i) => [l, i]));
  ctx.strokeStyle = "#000"; ctx.lineWidth = 2.5;
  for (const p of pairs || []) {
    const i = index[p.row], j = index[p.col];
    if (i !== undefined && j !== undefined) ctx.strokeRect(pad + j * size + 1, pad + i * size + 1, size - 3, size - 3);
  }
}
