/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * view.js: draws a view answer (docs/hostd.md, "The view") as HTML and SVG
 * written here, no library: per VM disk and op a latency heatmap over time,
 * the percentiles over time, where the time goes at p50 and p99 (phases),
 * and the slowest requests as waterfalls with the guest clock's error bound.
 *
 * The data is the page's JSON block; when that is null the page is hostd's
 * live view and fetches view.json (same query) every second, redrawing in
 * place. Every text from the data goes in through textContent, never as
 * markup: VM and disk names are the operators', not the page's.
 *
 * Elements carry data-* attributes (disk, op, row, count, phase) so that
 * the browser tests read what is drawn, not a side channel.
 */
'use strict';
(function () {
    var SVG = 'http://www.w3.org/2000/svg';
    var POLL_MS = 1000;
    var FORMAT = 1;
    var OPS = ['read', 'write', 'flush', 'discard', 'write_zeroes'];
    /* Phases in the order a request passes them, with their colours. */
    var PHASES = [
        ['guest_queue', '#9e7cc1'], ['guest_to_qemu', '#6baed6'],
        ['guest_to_device', '#6baed6'], ['device', '#2b7bba'],
        ['qemu', '#fd8d3c'], ['network', '#fdd0a2'], ['remote', '#e6550d'],
        ['backend', '#b2182b'], ['device_completion', '#74c476'],
        ['qemu_to_guest', '#238b45'], ['device_to_guest', '#238b45'],
    ];
    var SUMMARIES = ['total', 'in_qemu', 'span_alone'];
    var COLOUR = {total: '#444444', in_qemu: '#999999', span_alone: '#bbbbbb'};
    PHASES.forEach(function (p) { COLOUR[p[0]] = p[1]; });
    /* Viridis, light end for few requests. */
    var RAMP = [[253, 231, 37], [94, 201, 98], [33, 145, 140], [59, 82, 139],
                [68, 1, 84]];

    var state = {live: false, updates: 0, open: {}};

    function h(tag, attrs, kids) {
        var e = document.createElement(tag);
        for (var k in attrs || {}) {
            if (k === 'text') e.textContent = attrs[k];
            else if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
        }
        (kids || []).forEach(function (c) {
            if (c !== null && c !== undefined)
                e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
        });
        return e;
    }

    function s(tag, attrs, parent) {
        var e = document.createElementNS(SVG, tag);
        for (var k in attrs || {}) {
            if (k === 'text') e.textContent = attrs[k];
            else e.setAttribute(k, attrs[k]);
        }
        if (parent) parent.appendChild(e);
        return e;
    }

    function title(e, text) { s('title', {text: text}, e); }

    function dur(ns) {
        if (ns === null || ns === undefined || ns < 0) return '-';
        if (ns < 1e3) return ns.toFixed(0) + ' ns';
        if (ns < 1e6) return (ns / 1e3).toPrecision(3) + ' \u00b5s';
        if (ns < 1e9) return (ns / 1e6).toPrecision(3) + ' ms';
        return (ns / 1e9).toPrecision(3) + ' s';
    }

    /* A power of ten of nanoseconds, short. */
    function tick(ns) {
        var u = [[1e9, ' s'], [1e6, ' ms'], [1e3, ' \u00b5s'], [1, ' ns']];
        for (var i = 0; i < u.length; i++)
            if (ns >= u[i][0]) return String(Math.round(ns / u[i][0])) + u[i][1];
        return ns + ' ns';
    }

    function bytes(n) {
        if (n < 1024) return n + ' B';
        if (n < 1048576) return (n / 1024).toPrecision(3) + ' KiB';
        return (n / 1048576).toPrecision(3) + ' MiB';
    }

    function pad(n) { return (n < 10 ? '0' : '') + n; }

    /* A host monotonic time as wall-clock time when the view says how,
     * else relative to the view's instant. */
    function clock(data, ns, seconds) {
        if (data.realtime_offset_ns === null) {
            var d = (ns - data.now_ns) / 1e9;
            return (d < 0 ? '-' : '+') + Math.abs(d).toFixed(0) + ' s';
        }
        var t = new Date((ns + data.realtime_offset_ns) / 1e6);
        return pad(t.getHours()) + ':' + pad(t.getMinutes()) +
            (seconds === false ? '' : ':' + pad(t.getSeconds()));
    }

    function rampColour(f) {
        f = Math.max(0, Math.min(1, f)) * (RAMP.length - 1);
        var i = Math.min(RAMP.length - 2, Math.floor(f)), t = f - i, c = [];
        for (var k = 0; k < 3; k++)
            c.push(Math.round(RAMP[i][k] + t * (RAMP[i + 1][k] - RAMP[i][k])));
        return 'rgb(' + c.join(',') + ')';
    }

    /* Rows: rows_ns[r] is row r's smallest latency. A latency's position
     * in rows, continuous (linear inside a row, as the rows are). */
    function rowPos(rows, ns) {
        if (ns <= rows[1]) return Math.max(0, ns / rows[1]);
        for (var r = 1; r < rows.length - 1; r++)
            if (ns < rows[r + 1]) return r + (ns - rows[r]) / (rows[r + 1] - rows[r]);
        return rows.length - 1;
    }

    function rowLabel(rows, r) {
        if (r === 0) return '< ' + dur(rows[1]);
        if (r === rows.length - 1) return '\u2265 ' + dur(rows[r]);
        return dur(rows[r]) + ' \u2013 ' + dur(rows[r + 1]);
    }

    function decadeTicks(lo, hi) {
        var t = [];
        for (var v = 1e3; v <= 1e11; v *= 10)
            if (v >= lo && v <= hi) t.push(v);
        return t;
    }

    /* ---- per op: heatmap and percentiles over the window ---- */

    var W = 520, HM_H = 190, PC_H = 124, LEFT = 62, RIGHT = 8;

    /* The window's span as the report observed it (a disk younger than the
     * window: since it was registered), at least a minute. */
    function span(data, report) {
        var t1 = report.window_end_ns;
        return [Math.min(report.window_start_ns, t1 - 60e9), t1];
    }

    function xScale(data, report) {
        var t = span(data, report);
        return function (v) { return LEFT + (W - LEFT - RIGHT) * (v - t[0]) / (t[1] - t[0]); };
    }

    function timeAxis(svg, data, report, y) {
        var x = xScale(data, report), t = span(data, report), t0 = t[0], t1 = t[1];
        var minutes = t1 - t0 > 120e9;
        s('line', {class: 'axis', x1: LEFT, x2: W - RIGHT, y1: y, y2: y}, svg);
        for (var i = 0; i <= 4; i++) {
            var t = t0 + (t1 - t0) * i / 4;
            s('line', {class: 'axis', x1: x(t), x2: x(t), y1: y, y2: y + 3}, svg);
            s('text', {x: x(t), y: y + 13, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle',
                       text: clock(data, t, !minutes)}, svg);
        }
    }

    function opRows(columns, op, rows) {
        var lo = rows.length, hi = -1;
        columns.forEach(function (c) {
            c.ops.forEach(function (o) {
                if (o.op !== op) return;
                for (var k = 0; k < o.cells.length; k += 2) {
                    lo = Math.min(lo, o.cells[k]);
                    hi = Math.max(hi, o.cells[k]);
                }
            });
        });
        if (hi < 0) return null;
        /* At least a power of ten tall, so a narrow spread still reads. */
        lo = Math.max(0, lo - 2);
        hi = Math.min(rows.length - 1, Math.max(hi + 2, lo + 14));
        return [lo, hi];
    }

    function latencyAxis(svg, rows, range, y) {
        var lo = range[0], hi = range[1] + 1;
        decadeTicks(rows[lo] || 1, rows[Math.min(hi, rows.length - 1)]).forEach(function (v) {
            var yy = y(rowPos(rows, v));
            s('line', {class: 'grid', x1: LEFT, x2: W - RIGHT, y1: yy, y2: yy}, svg);
            s('text', {x: LEFT - 4, y: yy + 3, 'text-anchor': 'end', text: tick(v)}, svg);
        });
    }

    function heatmap(data, report, columns, op, range) {
        var rows = data.rows_ns, x = xScale(data, report), top = 6, bottom = HM_H - 30;
        var lo = range[0], hi = range[1] + 1;
        var y = function (pos) { return bottom - (bottom - top) * (pos - lo) / (hi - lo); };
        var svg = s('svg', {class: 'heatmap', width: W, height: HM_H, viewBox: '0 0 ' + W + ' ' + HM_H,
                            'data-op': op, role: 'img'});
        var max = 1;
        columns.forEach(function (c) {
            c.ops.forEach(function (o) {
                if (o.op !== op) return;
                for (var k = 1; k < o.cells.length; k += 2) max = Math.max(max, o.cells[k]);
            });
        });
        s('rect', {x: LEFT, y: top, width: W - LEFT - RIGHT, height: bottom - top, fill: '#f4f4f8'}, svg);
        latencyAxis(svg, rows, range, y);
        columns.forEach(function (c, ci) {
            c.ops.forEach(function (o) {
                if (o.op !== op) return;
                var x0 = x(c.start_ns), x1 = Math.max(x(c.end_ns), x0 + 1);
                for (var k = 0; k < o.cells.length; k += 2) {
                    var r = o.cells[k], n = o.cells[k + 1];
                    var cell = s('rect', {
                        class: 'cell', x: x0.toFixed(1), width: (x1 - x0).toFixed(1),
                        y: y(r + 1).toFixed(1), height: Math.max(1, y(r) - y(r + 1)).toFixed(1),
                        fill: rampColour(max > 1 ? Math.log(n) / Math.log(max) * 0.85 + 0.15 : 0.5),
                        'data-op': op, 'data-col': ci, 'data-row': r, 'data-count': n}, svg);
                    title(cell, clock(data, c.start_ns) + '\u2013' + clock(data, c.end_ns) + '  ' +
                          rowLabel(rows, r) + ': ' + n + (n === 1 ? ' request' : ' requests'));
                }
            });
        });
        timeAxis(svg, data, report, bottom);
        /* Colour key, under the axis. */
        var kx = W - RIGHT - 150;
        s('text', {x: kx - 4, y: HM_H - 3, 'text-anchor': 'end', text: 'requests per cell: 1'}, svg);
        for (var i = 0; i < 5; i++)
            s('rect', {x: kx + i * 14, y: HM_H - 11, width: 14, height: 9,
                       fill: rampColour(0.15 + 0.85 * i / 4)}, svg);
        s('text', {x: kx + 74, y: HM_H - 3, text: String(max), class: 'max-count'}, svg);
        return svg;
    }

    function percentiles(data, report, columns, op) {
        var rows = data.rows_ns, x = xScale(data, report), top = 6, bottom = PC_H - 30;
        var pts = {p50_ns: [], p90_ns: [], p99_ns: [], max_ns: []}, lo = Infinity, hi = 0;
        columns.forEach(function (c) {
            c.ops.forEach(function (o) {
                if (o.op !== op || !o.samples) return;
                for (var k in pts) {
                    pts[k].push([(x(c.start_ns) + x(c.end_ns)) / 2, o[k], c]);
                    lo = Math.min(lo, o[k]);
                    hi = Math.max(hi, o[k]);
                }
            });
        });
        var svg = s('svg', {class: 'percentiles', width: W, height: PC_H, viewBox: '0 0 ' + W + ' ' + PC_H,
                            'data-op': op, role: 'img'});
        if (!isFinite(lo)) return svg;
        var a = Math.floor(rowPos(rows, lo)) - 1, b = Math.ceil(rowPos(rows, hi)) + 1;
        if (b - a < 10) b = a + 10;
        var y = function (ns) { return bottom - (bottom - top) * (rowPos(rows, ns) - a) / (b - a); };
        s('rect', {x: LEFT, y: top, width: W - LEFT - RIGHT, height: bottom - top, fill: '#fafafa'}, svg);
        latencyAxis(svg, rows, [Math.max(0, a), Math.min(rows.length - 2, b)], function (pos) {
            return bottom - (bottom - top) * (pos - a) / (b - a);
        });
        var style = {p50_ns: ['#1f77b4', ''], p90_ns: ['#ff7f0e', ''], p99_ns: ['#d62728', ''],
                     max_ns: ['#888888', '2,2']};
        var gap = (W - LEFT - RIGHT) / 25;
        for (var k in pts) {
            var d = '', prev = null;
            pts[k].forEach(function (p) {
                d += (prev === null || p[0] - prev > gap ? 'M' : 'L') + p[0].toFixed(1) + ',' + y(p[1]).toFixed(1);
                prev = p[0];
            });
            s('path', {d: d, fill: 'none', stroke: style[k][0], 'stroke-width': 1.5,
                       'stroke-dasharray': style[k][1] || 'none', class: 'line', 'data-q': k}, svg);
            pts[k].forEach(function (p) {
                var dot = s('circle', {cx: p[0].toFixed(1), cy: y(p[1]).toFixed(1), r: 1.8, fill: style[k][0]}, svg);
                title(dot, k.replace('_ns', '') + ' ' + dur(p[1]) + ' at ' + clock(data, p[2].start_ns));
            });
        }
        timeAxis(svg, data, report, bottom);
        /* Key, under the axis. */
        var lx = W - RIGHT - 4 * 44;
        ['p50_ns', 'p90_ns', 'p99_ns', 'max_ns'].forEach(function (k) {
            s('rect', {x: lx, y: PC_H - 8, width: 10, height: 3, fill: style[k][0]}, svg);
            s('text', {x: lx + 13, y: PC_H - 3, text: k.replace('_ns', '')}, svg);
            lx += 44;
        });
        return svg;
    }

    /* ---- per op: where the time goes ---- */

    function stackBar(phases, key, total, width) {
        var parts = PHASES.map(function (p) { return phases[p[0]]; }).filter(Boolean);
        var sum = parts.reduce(function (a, p) { return a + p[key]; }, 0);
        var scale = Math.max(sum, total[key], 1), svg = s('svg', {width: width, height: 22, class: 'stack',
                                                                 'data-q': key});
        var x = 0;
        parts.forEach(function (p) {
            var w = width * p[key] / scale;
            var r = s('rect', {x: x, y: 2, width: Math.max(w, 0.5), height: 14, fill: COLOUR[p.phase],
                               'data-phase': p.phase}, svg);
            title(r, p.phase + ' ' + key.replace('_ns', '') + ' ' + dur(p[key]));
            x += w;
        });
        var tx = width * total[key] / scale;
        s('line', {x1: tx, x2: tx, y1: 0, y2: 20, stroke: '#000', 'stroke-width': 2}, svg);
        title(svg, 'total ' + key.replace('_ns', '') + ' ' + dur(total[key]));
        return svg;
    }

    function swatch(colour) {
        var e = s('svg', {width: 10, height: 10, class: 'swatch'});
        s('rect', {width: 10, height: 10, fill: colour}, e);
        return e;
    }

    function breakdown(op) {
        var byName = {};
        op.phases.forEach(function (p) { byName[p.phase] = p; });
        var total = byName.total || {p50_ns: 0, p99_ns: 0};
        var box = h('div', {class: 'breakdown'});
        box.appendChild(h('div', {class: 'bar-label', text: 'p50: each phase\u2019s own p50, the line the total\u2019s (' + dur(total.p50_ns) + ')'}));
        box.appendChild(stackBar(byName, 'p50_ns', total, 420));
        box.appendChild(h('div', {class: 'bar-label', text: 'p99: each phase\u2019s own p99, the line the total\u2019s (' + dur(total.p99_ns) + ')'}));
        box.appendChild(stackBar(byName, 'p99_ns', total, 420));
        var table = h('table', {class: 'phases'}, [h('tr', {}, ['phase', 'requests', 'p50', 'p90', 'p99', 'max']
            .map(function (t) { return h('th', {text: t}); }))]);
        var order = PHASES.map(function (p) { return p[0]; }).concat(SUMMARIES);
        order.forEach(function (name) {
            var p = byName[name];
            if (!p) return;
            var first = h('td', {}, [swatch(COLOUR[name]), name]);
            table.appendChild(h('tr', {class: 'phase-row' + (name === 'total' ? ' total' : ''), 'data-phase': name},
                [first, h('td', {text: p.count === op.count ? String(p.count) : p.count + ' of ' + op.count}),
                 h('td', {text: dur(p.p50_ns)}), h('td', {text: dur(p.p90_ns)}),
                 h('td', {text: dur(p.p99_ns)}), h('td', {text: dur(p.max_ns)})]));
        });
        box.appendChild(table);
        return box;
    }

    /* ---- the slowest requests as waterfalls ---- */

    function waterfall(data, req) {
        var byName = {}, t0, rowsOut = [];
        req.phases.forEach(function (p) { byName[p.phase] = p; });
        if (req.has_guest)
            t0 = req.guest_issue_ns - (byName.guest_queue ? byName.guest_queue.ns : 0);
        else
            t0 = req.span_start_ns;
        if (req.has_guest)
            rowsOut.push(['guest request', t0, req.guest_complete_ns, '#555', 'layer']);
        if (req.device_start_ns)
            rowsOut.push(['virtio-blk device', req.device_start_ns, req.device_end_ns, '#777', 'layer']);
        if (req.has_span)
            rowsOut.push(['QEMU (blkin filter)', req.span_start_ns, req.span_end_ns, '#999', 'layer']);
        req.phases.forEach(function (p) {
            rowsOut.push([p.phase, t0 + p.at_ns, t0 + p.at_ns + p.ns, COLOUR[p.phase] || '#888', 'phase']);
        });
        var end = t0 + 1;
        rowsOut.forEach(function (r) { end = Math.max(end, r[2]); });
        var width = 760, label = 130, right = 70, rh = 15, top = 16;
        var height = top + rowsOut.length * rh + 6;
        var x = function (t) { return label + (width - label - right) * (t - t0) / (end - t0); };
        var svg = s('svg', {class: 'waterfall', width: width, height: height,
                            viewBox: '0 0 ' + width + ' ' + height,
                            'data-trace': req.trace_id || '', 'data-op': req.op});
        /* The ruler. */
        for (var i = 0; i <= 4; i++) {
            var t = t0 + (end - t0) * i / 4;
            s('line', {class: 'grid', x1: x(t), x2: x(t), y1: top - 2, y2: height}, svg);
            s('text', {x: x(t), y: 10, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle',
                       text: dur(t - t0)}, svg);
        }
        /* The guest clock's error bound around the guest's own times: where
         * the guest's events may really have been on the host's clock. */
        var err = req.clock_error_ns || 0;
        if (req.has_guest && err > 0) {
            [req.guest_issue_ns, req.guest_complete_ns].forEach(function (g) {
                var band = s('rect', {class: 'clock-band', x: x(g - err), y: top - 2,
                                      width: Math.max(1, x(g + err) - x(g - err)), height: height - top + 2,
                                      fill: '#f2b134', 'fill-opacity': 0.35}, svg);
                title(band, 'guest clock error bound \u00b1' + dur(err));
            });
        }
        rowsOut.forEach(function (r, i) {
            var y = top + i * rh;
            var g = s('g', {class: r[4] === 'layer' ? 'layer-row' : 'phase-row', 'data-phase': r[4] === 'phase' ? r[0] : null}, svg);
            if (r[4] !== 'phase') g.removeAttribute('data-phase');
            s('text', {x: r[4] === 'phase' ? 14 : 2, y: y + 10, text: r[0]}, g);
            var bar = s('rect', {x: x(r[1]), y: y + 2, width: Math.max(1, x(r[2]) - x(r[1])), height: rh - 4,
                                 fill: r[3]}, g);
            title(bar, r[0] + ': ' + dur(r[2] - r[1]) + ' from +' + dur(r[1] - t0));
            s('text', {x: Math.min(x(r[2]) + 3, width - right + 3), y: y + 10, text: dur(r[2] - r[1])}, g);
        });
        var head = h('div', {class: 'head'}, [
            h('b', {text: req.op + ' ' + bytes(req.bytes)}),
            ' at offset ' + req.offset + ' \u00b7 ', h('b', {text: dur(req.total_ns)}),
            req.ret ? h('span', {class: 'warn', text: ' \u00b7 failed (' + req.ret + ')'}) : null,
            req.merged > 1 ? ' \u00b7 merged with ' + (req.merged - 1) + ' other(s)' : null,
            req.trace_id ? ' \u00b7 trace ' + req.trace_id : ' \u00b7 no QEMU span',
            ' \u00b7 ',
            h('span', {class: 'clock-error', 'data-ns': err,
                       text: req.has_guest ? 'guest clock error bound \u00b1' + dur(err) : 'host clock only'}),
        ]);
        return h('div', {class: 'req', 'data-guest': String(!!req.has_guest)}, [head, svg]);
    }

    /* ---- a disk ---- */

    function facts(d) {
        var r = d.report, c = r.counters || {}, f = h('div', {class: 'facts'});
        f.appendChild(h('span', {text: 'serial ' + r.serial}));
        f.appendChild(h('span', {text: 'filter ' + r.filter_id}));
        if (r.device) f.appendChild(h('span', {text: 'device ' + r.device}));
        if (r.vm_state === 'stopped') f.appendChild(h('span', {class: 'warn', text: 'VM stopped'}));
        var clk = r.clock;
        if (clk && clk.causal)
            f.appendChild(h('span', {class: 'clock', text: 'guest clock error bound \u00b1' + dur(clk.causal.bound_ns) +
                                     ' (probe \u00b1' + dur(clk.bound_ns) + ')'}));
        else if (clk)
            f.appendChild(h('span', {class: 'clock', text: 'guest clock error bound \u00b1' + dur(clk.bound_ns)}));
        else
            f.appendChild(h('span', {class: 'clock', text: 'guest clock not synchronised'}));
        if (r.remote) {
            var rc = r.remote.clock;
            f.appendChild(h('span', {text: 'served by ' + r.remote.server_filter_id + (rc ?
                ', its clock ' + (rc.offset_ns < 0 ? '-' : '+') + dur(Math.abs(rc.offset_ns)) + ' \u00b1' + dur(rc.bound_ns) : '')}));
        }
        var g = h('div', {class: 'facts counters'});
        [['matched', 'joined'], ['merged', 'merged'], ['unmatched_guest', 'unmatched guest'],
         ['unmatched_span', 'unmatched spans'], ['agent_drops', 'agent drops'], ['agent_gap', 'agent gaps'],
         ['lttng_discarded', 'LTTng discarded'], ['hung_reports', 'hung reports']].forEach(function (k) {
            if (c[k[0]] === undefined) return;
            g.appendChild(h('span', {class: (c[k[0]] && k[0] !== 'matched' && k[0] !== 'merged') ? 'warn' : '',
                                     'data-counter': k[0], text: k[1] + ' ' + c[k[0]]}));
        });
        return [f, g];
    }

    function disk(data, d) {
        var r = d.report, key = r.vm + '/' + r.disk;
        var sec = h('section', {class: 'disk', 'data-vm': r.vm, 'data-disk': r.disk}, [
            h('h2', {text: 'VM ' + r.vm + ' \u00b7 disk ' + r.disk})]);
        facts(d).forEach(function (e) { sec.appendChild(e); });
        (r.hung || []).forEach(function (x) {
            sec.appendChild(h('div', {class: 'hung', text: 'HUNG ' + x.op + ' offset ' + x.offset + ' ' +
                                      bytes(x.bytes) + ' for ' + dur(x.age_ns) + ' (trace ' + x.trace_id + ')'}));
        });
        var ops = (r.ops || []).slice().sort(function (a, b) { return OPS.indexOf(a.op) - OPS.indexOf(b.op); });
        if (!ops.length)
            sec.appendChild(h('p', {class: 'note', text: 'No requests in this window.'}));
        ops.forEach(function (op) {
            var range = opRows(d.columns, op.op, data.rows_ns);
            var box = h('div', {class: 'op', 'data-op': op.op}, [
                h('h3', {}, [op.op + ' ', h('span', {class: 'num', 'data-count': op.count,
                    text: op.count + ' requests \u00b7 ' + op.iops.toFixed(1) + ' IOPS \u00b7 ' +
                          op.mbps.toFixed(2) + ' MB/s'})])]);
            var body = h('div', {class: 'op-body'});
            var charts = h('figure', {class: 'charts'});
            if (range) {
                charts.appendChild(heatmap(data, r, d.columns, op.op, range));
                charts.appendChild(h('figcaption', {text: 'Latency heatmap of the total: requests per column and latency row'}));
                charts.appendChild(percentiles(data, r, d.columns, op.op));
                charts.appendChild(h('figcaption', {text: 'Total latency percentiles per column'}));
            } else {
                charts.appendChild(h('p', {class: 'note', text: 'No request of this op has a total phase.'}));
            }
            body.appendChild(charts);
            body.appendChild(breakdown(op));
            box.appendChild(body);
            sec.appendChild(box);
        });
        var tail = d.tail || [];
        if (tail.length) {
            var wf = h('div', {class: 'waterfalls'}, [h('h3', {text: 'Slowest requests of the window (' + tail.length + ' kept)'})]);
            tail.slice(0, 3).forEach(function (q) { wf.appendChild(waterfall(data, q)); });
            if (tail.length > 3) {
                var more = h('details', {'data-key': key}, [h('summary', {text: (tail.length - 3) + ' more'})]);
                if (state.open[key]) more.setAttribute('open', '');
                more.addEventListener('toggle', function () { state.open[key] = more.open; });
                tail.slice(3).forEach(function (q) { more.appendChild(waterfall(data, q)); });
                wf.appendChild(more);
            }
            sec.appendChild(wf);
        }
        return sec;
    }

    /* ---- the page ---- */

    function query() {
        var q = {};
        location.search.replace(/^\?/, '').split('&').forEach(function (kv) {
            if (!kv) return;
            var i = kv.indexOf('=');
            q[decodeURIComponent(i < 0 ? kv : kv.slice(0, i))] = i < 0 ? '' : decodeURIComponent(kv.slice(i + 1));
        });
        return q;
    }

    function link(params, text, current) {
        var parts = [];
        for (var k in params) if (params[k]) parts.push(k + '=' + encodeURIComponent(params[k]));
        return h('a', {href: '?' + parts.join('&'), class: current ? 'current' : '', text: text});
    }

    function controls(data) {
        var nav = document.getElementById('controls'), q = query();
        nav.textContent = '';
        if (!state.live) return;
        var vm = data.vm || '';
        nav.appendChild(link({vm: vm, window: '1m'}, 'last minute (seconds)', data.window === '1m'));
        nav.appendChild(link({vm: vm, window: '1h'}, 'last hour (minutes)', data.window === '1h'));
        if (data.vms.length > 1 || !data.vm) {
            nav.appendChild(document.createTextNode(' VM: '));
            nav.appendChild(link({window: q.window}, 'all', !data.vm));
            data.vms.forEach(function (v) { nav.appendChild(link({vm: v, window: q.window}, v, v === data.vm)); });
        }
    }

    function render(data) {
        var meta = document.getElementById('meta'), app = document.getElementById('app');
        if (!data || data.view !== FORMAT) {
            banner('This page reads view format ' + FORMAT + '; the data is ' + (data ? 'format ' + data.view : 'missing') + '.');
            return;
        }
        var scroll = window.scrollY;
        meta.textContent = '';
        meta.appendChild(h('span', {text: 'host ' + data.host + ' \u00b7 ' + (data.vm ? 'VM ' + data.vm : 'all VMs') +
            ' \u00b7 ' + (data.window === '1h' ? 'last hour, a column per minute' : 'last minute, a column per second') +
            ' \u00b7 as of ' + clock(data, data.now_ns) + ' \u00b7 '}));
        meta.appendChild(state.live ? h('span', {class: 'live', id: 'live', text: 'live, updated every second (' + state.updates + ')'})
                                    : h('span', {text: 'report written by blkin report --html'}));
        controls(data);
        app.textContent = '';
        if (!data.disks.length)
            app.appendChild(h('p', {class: 'note', text: 'No disks registered.'}));
        data.disks.forEach(function (d) { app.appendChild(disk(data, d)); });
        if (data.disks_left_out)
            app.appendChild(h('p', {class: 'note', text: data.disks_left_out + ' more disks left out; name a VM.'}));
        document.body.setAttribute('data-updates', String(state.updates));
        document.body.setAttribute('data-now', String(data.now_ns));
        window.scrollTo(0, scroll);
    }

    function banner(text) {
        var b = document.getElementById('banner');
        b.textContent = text || '';
        b.hidden = !text;
    }

    function poll() {
        var url = 'view.json' + location.search;
        fetch(url, {cache: 'no-store'}).then(function (resp) {
            return resp.json().then(function (body) {
                if (!resp.ok || !body.ok) throw new Error(body.error || resp.statusText);
                return body;
            }, function () { throw new Error(resp.status + ' ' + resp.statusText); });
        }).then(function (data) {
            state.updates++;
            banner('');
            render(data);
        }, function (e) {
            banner('hostd did not answer: ' + e.message + ' (retrying)');
        }).then(function () { setTimeout(poll, POLL_MS); });
    }

    var data = JSON.parse(document.getElementById('blkin-data').textContent);
    if (data === null) {
        state.live = true;
        poll();
    } else {
        render(data);
    }
})();
