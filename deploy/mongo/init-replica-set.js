// Initiates the Puskesos MongoDB replica set (rs0) and creates one user per service.
//
// Idempotent: run it after every deployment (compose: the mongo-init service; Kubernetes: the
// mongo-init Job). Connect as root to the first member with directConnection=true:
//   mongosh "mongodb://root:$MONGO_ROOT_PASSWORD@mongo-1:27017/admin?directConnection=true" init-replica-set.js
// Environment: MONGO_MEMBERS (host:port,host:port,...), MONGO_<SERVICE>_PASSWORD for each service.
// Each service may read and write its own database (puskesos_<service>) and nothing else:
// no service reads another's data (BRIEF §3).

const SERVICES = ["intake", "referral", "distribution", "notification", "audit"];
const NAMESPACE = process.env.PUSKESOS_NAMESPACE || "puskesos";
const members = (process.env.MONGO_MEMBERS || "").split(",").filter((m) => m.length > 0);
if (members.length === 0) {
  throw new Error("MONGO_MEMBERS is empty: give the replica set members as host:port,host:port,...");
}

function waitFor(what, check, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    try {
      if (check()) return;
    } catch (e) {
      // not ready yet: keep polling until the deadline
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds}s waiting for ${what}`);
    sleep(1000);
  }
}

let initiated = true;
try {
  rs.status();
} catch (e) {
  if (e.codeName !== "NotYetInitialized") throw e;
  initiated = false;
}
if (!initiated) {
  print(`initiating replica set rs0 with ${members.join(", ")}`);
  rs.initiate({
    _id: "rs0",
    members: members.map((host, i) => ({ _id: i, host: host, priority: i === 0 ? 2 : 1 })),
  });
}
waitFor("a primary", () => db.hello().isWritablePrimary === true, 120);
waitFor("every member healthy", () => rs.status().members.every((m) => m.health === 1 && [1, 2].includes(m.state)), 300);

const admin = db.getSiblingDB("admin");
for (const service of SERVICES) {
  const password = process.env[`MONGO_${service.toUpperCase()}_PASSWORD`];
  if (!password) throw new Error(`MONGO_${service.toUpperCase()}_PASSWORD is not set`);
  const roles = [{ role: "readWrite", db: `${NAMESPACE}_${service}` }];
  if (admin.getUser(service) === null) {
    admin.createUser({ user: service, pwd: password, roles: roles });
    print(`created user ${service}`);
  } else {
    admin.updateUser(service, { pwd: password, roles: roles });
    print(`updated user ${service}`);
  }
}
print(`replica set rs0 ready: ${rs.status().members.map((m) => `${m.name} ${m.stateStr}`).join(", ")}`);
