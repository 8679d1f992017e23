// Run by typescript_test.go: follows the feed as videoshare (CONCORD_ADDR, CONCORD_PKI) from
// the start with heartbeats every second, and prints each event's notice id and cursor, and
// "resume: <why>" whenever the stream broke, until it has printed argv[2] events. The test
// freezes the connection meanwhile: the watch must give it up and resume on a new one.
import { Client } from "../index.js";

const want = Number(process.argv[2]);
const platform = await Client.dev(process.env.CONCORD_ADDR!, "videoshare", process.env.CONCORD_PKI!);
let n = 0;
const onResume = (err: Error) => console.log(`resume: ${err.message}`);
for await (const event of platform.watch({ fromStart: true, heartbeatSeconds: 1, reconnectDelayMs: 100, onResume })) {
  console.log(event.noticeId, event.cursor);
  if (++n === want) break;
}
platform.close();
