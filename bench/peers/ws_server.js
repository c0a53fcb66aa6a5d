// The classic `ws` tutorial broadcast server: every message goes to every client of its room.
// A room is the request path. Usage: node ws_server.js PORT [HOST]; prints "listening" when ready.
'use strict';

const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2] || 8090);
const host = process.argv[3] || '127.0.0.1';
const rooms = new Map();

const server = http.createServer((req, res) => { res.writeHead(426); res.end(); });
const wss = new WebSocketServer({ server, perMessageDeflate: false });

wss.on('connection', (ws, req) => {
  const room = req.url;
  let members = rooms.get(room);
  if (!members) rooms.set(room, (members = new Set()));
  members.add(ws);
  ws.on('message', (data, isBinary) => {
    for (const client of members) {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    }
  });
  ws.on('close', () => {
    members.delete(ws);
    if (members.size === 0) rooms.delete(room);
  });
});

// The same listen backlog as our Daphne (chatproject.server uses 1024).
server.listen({ port, host, backlog: 1024 }, () => console.log(`listening on ${host}:${port}`));
process.on('SIGTERM', () => process.exit(0));
