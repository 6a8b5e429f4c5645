"use strict";
// A 12x12 difference matrix on a <canvas>: diverging colours in [-1, 1], masked cells grey,
// synkinesis pairs framed. Small enough not to need a chart library.
function drawHeatmap(canvas, labels, matrix, mask, pairs) {
  const ctx = canvas.getContext("2d");
  const n = labels.length, pad = 42, size = (Math.min(canvas.width, canvas.height) - pad) / n;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = "#333";
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  labels.forEach((l, i) => ctx.fillText(l, pad - 4, pad + (i + 0.5) * size));
  ctx.save();
  labels.forEach((l, j) => {
    ctx.save(); ctx.translate(pad + (j + 0.5) * size, pad - 4); ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left"; ctx.fillText(l, 0, 0); ctx.restore();
  });
  ctx.restore();
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = matrix && matrix[i] ? matrix[i][j] : null;
      const kept = !mask || (mask[i] && mask[i][j]);
      let colour = "#e5e7eb";
      if (kept && v !== null && v !== undefined) {
        const t = Math.max(-1, Math.min(1, v));
        const a = Math.round(255 * (1 - Math.abs(t)));
        colour = t >= 0 ? `rgb(255,${a},${a})` : `rgb(${a},${a},255)`;
      } else if (kept) {
        colour = "#fafafa";
      }
      ctx.fillStyle = colour;
      ctx.fillRect(pad + j * size, pad + i * size, size - 1, size - 1);
    }
  }
  const index = Object.fromEntries(labels.map((l, i) => [l, i]));
  ctx.strokeStyle = "#000"; ctx.lineWidth = 2.5;
  for (const p of pairs || []) {
    const i = index[p.row], j = index[p.col];
    if (i !== undefined && j !== undefined) ctx.strokeRect(pad + j * size + 1, pad + i * size + 1, size - 3, size - 3);
  }
}
