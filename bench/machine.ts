import os from 'node:os';
import { median } from './stats';

const SAMPLE = { a: Array.from({ length: 200 }, (_, i) => ({ i, s: 'x'.repeat(20), n: i * 1.5 })) };

/** A fixed single-threaded JSON workload; ~40 ms on the reference 2-core EPYC VM. */
function calibrationWork(): number {
  let h = 0;
  for (let k = 0; k < 400; k++) {
    const s = JSON.stringify(SAMPLE);
    h += (JSON.parse(s) as typeof SAMPLE).a.length + s.length;
  }
  return h;
}

/**
 * Median time of the fixed workload. Shared VMs change speed from minute to minute (neighbours,
 * throttling) without any steal showing in the guest: compare runs by this figure too.
 */
export function cpuCalibrationMs(runs = 7): number {
  calibrationWork();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    calibrationWork();
    times.push(performance.now() - started);
  }
  return median(times);
}

const loadAverage = () => os.loadavg().map((l) => Math.round(l * 100) / 100);

export function machine() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    totalMemoryBytes: os.totalmem(),
    platform: os.platform(),
    release: os.release(),
    arch: os.arch(),
    node: process.version,
    date: new Date().toISOString(),
    /** 1/5/15-minute load averages at start: anything else running on the box skews every figure. */
    loadAverage: loadAverage(),
    cpuCalibrationMs: cpuCalibrationMs(),
  };
}

export function machineAtEnd() {
  return { loadAverage: loadAverage(), cpuCalibrationMs: cpuCalibrationMs() };
}
