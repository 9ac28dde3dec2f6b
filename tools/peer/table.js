#!/usr/bin/env node
// The markdown table of upscalerjs_table.sh from its runs folder: per scale, bicubic,
// then each UpscalerJS model and srgraph's built-in WDSR-B, with parameters, PSNR-Y /
// SSIM-Y per set (srgraph eval --upscaled's) and the median seconds per picture over
// all the scale's pictures (each picture timed from reading its file to writing its
// upscale, by upscale.js or by `srgraph upscale`).
//
//   node table.js RUNS_DIR "2 3 4" "Set5 Set14" "esrgan-slim esrgan-medium esrgan-thick" "tract ort" THREADS
'use strict';

const fs = require('fs');
const path = require('path');

const [runs, scales, sets, models, engines, threads] = process.argv.slice(2);
const words = (s) => s.split(/\s+/).filter(Boolean);
const read = (name) => {
  const file = path.join(runs, name);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
};
const json = (name) => {
  const text = read(name);
  return text ? JSON.parse(text) : null;
};
const median = (xs) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const score = (x) => `${x.psnr_y.toFixed(2)} / ${x.ssim_y.toFixed(4)}`;

// `srgraph upscale` ends each picture's line with "(WxH -> WxH, N tiles, T s)".
const srgraphSeconds = (log) =>
  log
    .split('\n')
    .map((line) => line.match(/, ([0-9.]+) s(?:, [^)]*)?\)$/))
    .filter(Boolean)
    .map((m) => Number(m[1]));

const header = ['model', 'scale', 'params', ...words(sets).map((s) => `${s} PSNR-Y / SSIM-Y`), 's / picture (median)'];
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`);
const missing = [];
for (const scale of words(scales)) {
  const rows = [];
  let bicubic = null;
  const upscalers = [
    ...words(models).map((pkg) => ({ pkg, name: `UpscalerJS ${pkg}` })),
    ...words(engines).map((engine) => ({
      pkg: `srgraph-${engine}`,
      name: `srgraph WDSR-B (built-in; ${engine}, ${threads === '0' ? 'all cores' : `${threads} thread${threads === '1' ? '' : 's'}`})`,
    })),
  ];
  for (const { pkg, name } of upscalers) {
    const cells = [];
    const seconds = [];
    let params = null;
    let architecture = null;
    for (const set of words(sets)) {
      const run = `${pkg}-x${scale}-${set}`;
      const scores = json(`${run}.scores.json`);
      if (!scores) {
        cells.push('—');
        missing.push(run);
        continue;
      }
      const s = scores.sets[0];
      bicubic = bicubic || {};
      bicubic[set] = s.bicubic;
      cells.push(score(s.model));
      if (pkg.startsWith('srgraph')) {
        seconds.push(...srgraphSeconds(read(`${run}.log`) || ''));
      } else {
        const report = json(`${run}.report.json`);
        seconds.push(...report.seconds);
        params = report.params;
        architecture = report.architecture;
      }
    }
    if (pkg.startsWith('srgraph')) {
      const inspect = read(`srgraph-x${scale}.inspect.txt`) || '';
      const m = inspect.match(/^weights\s+([0-9,]+) values/m);
      params = m ? Number(m[1].replace(/,/g, '')) : null;
    }
    const label = architecture ? `${name} (${architecture.toUpperCase()})` : name;
    const t = median(seconds);
    rows.push([label, `x${scale}`, params === null ? '—' : params.toLocaleString('en-US'), ...cells, t === null ? '—' : t.toFixed(2)]);
  }
  if (bicubic) {
    console.log(`| bicubic | x${scale} | 0 | ${words(sets).map((s) => (bicubic[s] ? score(bicubic[s]) : '—')).join(' | ')} | |`);
  }
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}
if (missing.length) console.log(`\nNot finished (see RUN.log in ${runs}): ${missing.join(', ')}`);
