package id.puskesos.mongo;

import java.util.List;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.backend.memory.MemoryDatabase;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;

/**
 * The Puskesos local Mongo-compatible engine: mongo-java-server's memory backend, reporting the
 * wire version of MongoDB 4.4 (current PyMongo refuses older servers) and building secondary indexes.
 *
 * <pre>java -Xmx2g -jar puskesos-mongo-server.jar --port 27017 [--host 127.0.0.1]</pre>
 *
 * Prints {@code puskesos-mongo-server listening on HOST:PORT} once it accepts connections. Data lives
 * in memory only: it is gone when the process ends (the local stack ties its NATS data to that).
 */
public final class LocalMongoServer {

    /** MongoDB 4.4: wire version 9, the lowest current PyMongo accepts. */
    static final MongoVersion VERSION = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(4, 4, 0);
        }

        @Override
        public int getWireVersion() {
            return 9;
        }
    };

    private LocalMongoServer() {
    }

    /** What buildInfo's {@code engine} field says (the storage conformance suite detects the engine by it). */
    static final String ENGINE = "mongo-java-server 1.47.0 memory backend (puskesos launcher)";

    static final class IndexedMemoryBackend extends MemoryBackend {
        @Override
        public MemoryDatabase openOrCreateDatabase(String databaseName) {
            return new IndexedMemoryDatabase(databaseName, getCursorRegistry());
        }

        @Override
        public Document handleCommand(Channel channel, String databaseName, String command, Document query) {
            Document response = super.handleCommand(channel, databaseName, command, query);
            if (command.equalsIgnoreCase("buildinfo")) {
                response.put("engine", ENGINE);
            }
            return response;
        }
    }

    public static void main(String[] args) {
        String host = "127.0.0.1";
        int port = 27017;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--host" -> host = args[++i];
                case "--port" -> port = Integer.parseInt(args[++i]);
                case "--help", "-h" -> {
                    System.out.println("usage: puskesos-mongo-server [--host 127.0.0.1] [--port 27017]");
                    return;
                }
                default -> {
                    System.err.println("unknown argument: " + args[i] + " (try --help)");
                    System.exit(2);
                }
            }
        }
        MongoServer server = new MongoServer(new IndexedMemoryBackend().version(VERSION));
        server.bind(host, port);
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow, "shutdown"));
        System.out.println("puskesos-mongo-server listening on " + host + ":" + port);
        System.out.flush();
    }
}
