// Preloaded into Azurite by the dev server (NODE_OPTIONS=--require ...).
//
// Azurite saves its data and exits on the first SIGTERM (a `once` listener). When the dev server
// dies, the kernel's parent-death signal can arrive several times (once per server thread the
// orphan is handed to while they exit), and without a listener Node dies of the second SIGTERM in
// the middle of saving. This listener stays, so repeats are ignored; a hung Azurite still gets
// SIGKILL from the next start's clean-up.
process.on("SIGTERM", () => {});
