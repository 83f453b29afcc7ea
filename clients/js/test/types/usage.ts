// Compiled (not run) by `npm test`: the published declarations serve a TypeScript user.
import {
  ConciergeClient,
  ReplyError,
  type ClientEvent,
  type ConnectedEvent,
  type Hello,
  type MessageFrame,
  type ServiceInfo,
  type StoredFile,
} from "concierge-client";

export async function usage(): Promise<void> {
  const client = new ConciergeClient("http://127.0.0.1:64209", { name: "typed", tags: ["t"], resume: true });
  const hello: Hello = await client.connect();
  const key: string = hello.uuid;
  const off: () => void = client.on<MessageFrame>("MESSAGE", (message) => {
    const from: string = message.origin.name;
    void from;
  });
  off();
  client.on<ConnectedEvent>("connected", (event) => {
    const resumed: boolean = event.resumed;
    void resumed;
  });
  const service: ServiceInfo = await client.createService("svc", "nick");
  await client.sendTo({ uuid: service.owner_uuid }, { any: ["json"] });
  try {
    await client.sendTo("nobody", 1, { timeout: 1000 });
  } catch (error) {
    if (error instanceof ReplyError) {
      const type: string = error.type;
      void type;
    }
  }
  const stored: StoredFile = await client.files.upload("a.txt", new Blob(["x"]), {
    onProgress: (loaded: number, total: number | undefined) => void [loaded, total],
  });
  const blob: Blob = await client.files.download(stored.path, { client: "other" });
  for await (const event of client) {
    const typed: ClientEvent = event;
    if (typed.type === "closed") break;
  }
  void [key, blob];
  client.close();
}
