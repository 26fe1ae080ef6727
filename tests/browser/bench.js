// bench.js — the bench (citypass-hil) from a browser test: place a card on a reader, tap
// it at a gate and read the gate's decision, as tests/controller/daemon/lib.sh's `tap`
// does in shell (same commands of `citypass-hil ctl`, same bounds).
'use strict';

const { execFileSync } = require('child_process');

class Bench {
  // hil: the citypass-hil binary; runDir: the bench's --run-dir
  constructor(hil, runDir) {
    this.hil = hil;
    this.runDir = runDir;
  }

  ctl(...args) {
    return execFileSync(this.hil, ['ctl', '--run-dir', this.runDir, ...args], {
      encoding: 'utf8',
      timeout: 20000,
    });
  }

  now() {
    return this.ctl('now').match(/[0-9]+/)[0];
  }

  place(reader, ...what) {
    this.ctl('place', reader, ...what);
  }

  remove(reader) {
    this.ctl('remove', reader);
  }

  // One tap at a gate's reader: place, wait (15 s at most) for the gate's decision after
  // it, remove, wait for the controller to see the field empty. The decision's gate line
  // ("relay=closed led=red display=Carte révoquée").
  async tap(reader, ...what) {
    const since = this.now();
    this.place(reader, ...what);
    let line = '';
    for (const deadline = Date.now() + 15000; !line; ) {
      if (Date.now() > deadline) throw new Error(`no gate decision at ${reader} for ${what.join(' ')}`);
      await new Promise((ok) => setTimeout(ok, 50));
      line = this.ctl('outputs', reader, `since=${since}`)
        .split('\n')
        .find((l) => /led=(green|red|amber)/.test(l)) || '';
    }
    const removed = this.now();
    this.remove(reader);
    const empty = `${reader} pn532 InListPassiveTarget 2 bytes -> 1 bytes`;
    for (const deadline = Date.now() + 10000; ; ) {
      if (this.ctl('events', `since=${removed}`).includes(empty)) break;
      if (Date.now() > deadline) throw new Error(`the controller at ${reader} did not see the field empty`);
      await new Promise((ok) => setTimeout(ok, 50));
    }
    return line;
  }
}

module.exports = { Bench };
