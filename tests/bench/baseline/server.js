// The design we replace, as a benchmark baseline: a Node.js room on npm `ws` that parses each
// message and broadcasts it with wss.clients.forEach(c => c.send(JSON.stringify(action))).
// No storage, no checks. Usage: node server.js PORT
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] ?? 4100);
const wss = new WebSocketServer({ host: '127.0.0.1', port });
wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    let action;
    try {
      action = JSON.parse(data);
    } catch {
      return;
    }
    wss.clients.forEach((c) => c.send(JSON.stringify(action)));
  });
});
wss.on('listening', () => console.log(`baseline listening on ws://127.0.0.1:${port}/`));
