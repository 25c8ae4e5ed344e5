/**
 * Ignores SIGHUP from the moment tinylb's own code starts to run. SIGHUP's default action
 * ends the process, and loading the rest of tinylb takes about 15 ms. A reload sent right
 * after start (`systemctl reload` after a `Type=exec` start) would end it without a line.
 * `main.ts` imports this module first, so it runs before every other module; the balancer
 * installs its reload handler later.
 *
 * NOTE: a SIGHUP during the runtime's own start-up, before any module runs, still ends the
 * process.
 */
process.on("SIGHUP", () => {});
