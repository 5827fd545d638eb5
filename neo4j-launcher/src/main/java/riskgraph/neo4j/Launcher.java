package riskgraph.neo4j;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.ConnectorPortRegister;
import org.neo4j.configuration.connectors.ConnectorType;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.io.ByteUnit;
import org.neo4j.kernel.internal.GraphDatabaseAPI;

/**
 * Runs a Neo4j Community server in this JVM with Bolt on 127.0.0.1 for development and CI.
 *
 * <p>Usage: {@code Launcher PORT DATA_DIR [--ignore-stdin]}. PORT 0 picks a free port. With
 * {@code NEO4J_LAUNCHER_PASSWORD} set, auth is on and user {@code neo4j} gets that password;
 * otherwise auth is off. Prints exactly one line {@code READY bolt://127.0.0.1:PORT} on stdout
 * once the default database accepts queries, and shuts down on SIGTERM/SIGINT or when stdin is
 * closed (so a parent that dies never leaves the server behind), unless {@code --ignore-stdin}.
 *
 * <p>Memory: the JVM's {@code -Xmx} bounds the heap (query memory and transaction state); the
 * page cache, which holds the store files off-heap, is {@code -Driskgraph.pagecache=SIZE}
 * (e.g. {@code 4g}; default 256m, sized for a small CI machine).
 */
public final class Launcher {
    static final String PASSWORD_ENV = "NEO4J_LAUNCHER_PASSWORD";
    static final String PAGECACHE_PROPERTY = "riskgraph.pagecache";
    private static final long START_TIMEOUT_MS = TimeUnit.MINUTES.toMillis(3);

    private Launcher() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Launcher PORT DATA_DIR [--ignore-stdin]");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        Path home = Path.of(args[1]).toAbsolutePath();
        boolean ignoreStdin = args.length > 2 && args[2].equals("--ignore-stdin");
        String password = System.getenv(PASSWORD_ENV);
        boolean authEnabled = password != null && !password.isEmpty();
        long pageCache = ByteUnit.parse(System.getProperty(PAGECACHE_PROPERTY, "256m"));

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", port))
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .setConfig(GraphDatabaseSettings.auth_enabled, authEnabled)
                .setConfig(GraphDatabaseSettings.pagecache_memory, pageCache)
                .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                // Netty waits a 5 s quiet period per event loop group by default; a dev server
                // with no clients left has nothing to wait for.
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_timeout,
                        Duration.ofSeconds(5))
                .build();

        AtomicBoolean stopped = new AtomicBoolean();
        CountDownLatch done = new CountDownLatch(1);
        Runnable stop = () -> {
            if (stopped.compareAndSet(false, true)) {
                dbms.shutdown();
                done.countDown();
            }
        };
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stop.run();
            awaitQuietly(done);
        }, "neo4j-launcher-shutdown"));

        GraphDatabaseService db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
        if (!db.isAvailable(START_TIMEOUT_MS)) {
            System.err.println("the default database did not become available");
            System.exit(1);
        }
        if (authEnabled) {
            dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                    Map.of("password", password));
        }
        int boundPort = ((GraphDatabaseAPI) db).getDependencyResolver()
                .resolveDependency(ConnectorPortRegister.class)
                .getLocalAddress(ConnectorType.BOLT)
                .getPort();
        System.out.println("READY bolt://127.0.0.1:" + boundPort);
        System.out.flush();

        if (ignoreStdin) {
            done.await();
            return;
        }
        drain(System.in);
        stop.run();
        System.exit(0);
    }

    private static void drain(InputStream in) {
        byte[] buffer = new byte[256];
        try {
            while (in.read(buffer) != -1) {
                // Anything written to stdin is ignored; only its end matters.
            }
        } catch (IOException e) {
            // A broken stdin means the parent is gone: shut down as on a clean close.
        }
    }

    private static void awaitQuietly(CountDownLatch latch) {
        try {
            latch.await(1, TimeUnit.MINUTES);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
