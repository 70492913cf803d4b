package dev.tokenops.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.kstream.WindowedSerdes;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyWindowStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Kafka Streams reference for tokenops' worker: per tenant and model, 1-minute tumbling
 * windows in event time with a grace period, summing the five token counts and the events.
 *
 * <p>Usage: {@code Main BOOTSTRAP INPUT_TOPIC OUTPUT_TOPIC APP_ID EVENTS [GRACE_S] [THREADS]
 * [STATE_DIR] [TIMEOUT_S] [TOTALS]}. Reads tokenops records (one CloudEvent, a v1 batch {@code
 * {"type": "ai.tokenops.usage.batch", "tenant_id": ..., "events": [CloudEvent, ...]}} or a v2
 * columnar batch {@code {..., "columns": {"model": [...], "time": [...], ...}}}). Prints
 * {@code {"state": "RUNNING"}} once its partitions are assigned, and after EVENTS events have
 * been added to their windows, or TIMEOUT_S seconds (default 300) without that, one JSON line
 * {@code {"events": N, "seconds": S, "timed_out": B}} (seconds from the first event parsed)
 * and exits. An event dropped past its window's grace is never added, so a run that drops
 * one ends on the time-out instead of waiting forever. With TOTALS = {@code totals} it also
 * prints {@code {"totals": [[tenant, model, window_start_ms, input, output, cache_read,
 * cache_creation, reasoning, events], ...]}} read from its window store, for the harness to
 * compare with what it sent.
 *
 * <p>Tuned as the Kafka Streams docs advise for throughput (memory management, record
 * caches): a 64 MiB state-store cache and the at-least-once commit interval of 30 s made
 * explicit, so a window is written downstream once per cache flush instead of once per
 * event; and one stream thread per core (THREADS, from the harness).
 *
 * <p>The records' key is the tenant, so the stream is already partitioned by tenant: events
 * keep that key (no repartition topic) and each tenant's window holds a per-model map.
 */
public final class Main {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String STORE = "totals";
  private static final String[] TOKENS = {
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens"
  };

  /** One event, stamped with its own event time. */
  record Usage(String model, long[] counts) {}

  private Main() {}

  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    String input = args[1];
    String output = args[2];
    String appId = args[3];
    long expected = Long.parseLong(args[4]);
    long graceS = args.length > 5 ? Long.parseLong(args[5]) : 30;
    int threads = args.length > 6 ? Integer.parseInt(args[6]) : 1;
    long timeoutS = args.length > 8 ? Long.parseLong(args[8]) : 300;
    boolean dumpTotals = args.length > 9 && args[9].equals("totals");

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
    props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 64L * 1024 * 1024);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 30_000);
    props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    if (args.length > 7) {
      props.put(StreamsConfig.STATE_DIR_CONFIG, args[7]);
    }

    AtomicLong seen = new AtomicLong();
    AtomicLong added = new AtomicLong();
    AtomicLong firstNanos = new AtomicLong();
    CountDownLatch done = new CountDownLatch(1);

    // Never used on the wire: the key stays the tenant, so there is no repartition topic
    // between the parse step and the windowed aggregation.
    Serde<Usage> usageSerde = Serdes.serdeFrom((t, u) -> null, (t, b) -> null);
    Serde<Map<String, long[]>> totalsSerde =
        Serdes.serdeFrom((t, m) -> writeTotals(m), (t, b) -> readTotals(b));

    StreamsBuilder builder = new StreamsBuilder();
    builder.stream(input, Consumed.with(Serdes.String(), Serdes.ByteArray()))
        .processValues(
            () ->
                new FixedKeyProcessor<String, byte[], Usage>() {
                  private FixedKeyProcessorContext<String, Usage> context;

                  @Override
                  public void init(FixedKeyProcessorContext<String, Usage> context) {
                    this.context = context;
                  }

                  @Override
                  public void process(FixedKeyRecord<String, byte[]> record) {
                    if (seen.getAndIncrement() == 0) {
                      firstNanos.set(System.nanoTime());
                    }
                    JsonNode body;
                    try {
                      body = JSON.readTree(record.value());
                    } catch (IOException e) {
                      return; // a malformed record counts nothing, as in tokenops' dead letters
                    }
                    JsonNode columns = body.get("columns");
                    if (columns != null) {
                      forwardColumns(record, columns);
                      return;
                    }
                    JsonNode events = body.get("events");
                    if (events == null) {
                      forward(record, body);
                    } else {
                      for (JsonNode event : events) {
                        forward(record, event);
                      }
                    }
                  }

                  /** A columnar (v2) batch: event i is item i of every column. */
                  private void forwardColumns(
                      FixedKeyRecord<String, byte[]> record, JsonNode columns) {
                    JsonNode models = columns.get("model");
                    JsonNode times = columns.get("time");
                    JsonNode[] tokens = new JsonNode[TOKENS.length];
                    for (int i = 0; i < TOKENS.length; i++) {
                      tokens[i] = columns.get(TOKENS[i]);
                    }
                    for (int j = 0; j < models.size(); j++) {
                      long[] counts = new long[TOKENS.length];
                      for (int i = 0; i < TOKENS.length; i++) {
                        counts[i] = tokens[i] == null ? 0 : tokens[i].get(j).asLong();
                      }
                      long time = Instant.parse(times.get(j).asText()).toEpochMilli();
                      context.forward(
                          record
                              .withValue(new Usage(models.get(j).asText(), counts))
                              .withTimestamp(time));
                    }
                  }

                  private void forward(FixedKeyRecord<String, byte[]> record, JsonNode event) {
                    JsonNode data = event.get("data");
                    long[] counts = new long[TOKENS.length];
                    for (int i = 0; i < TOKENS.length; i++) {
                      JsonNode v = data.get(TOKENS[i]);
                      counts[i] = v == null ? 0 : v.asLong();
                    }
                    long time = Instant.parse(event.get("time").asText()).toEpochMilli();
                    context.forward(
                        record
                            .withValue(new Usage(data.get("model").asText(), counts))
                            .withTimestamp(time));
                  }
                })
        .groupByKey(Grouped.with(Serdes.String(), usageSerde))
        .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), Duration.ofSeconds(graceS)))
        .aggregate(
            HashMap::new,
            (tenant, usage, totals) -> {
              long[] t = totals.computeIfAbsent(usage.model(), m -> new long[TOKENS.length + 1]);
              for (int i = 0; i < TOKENS.length; i++) {
                t[i] += usage.counts()[i];
              }
              t[TOKENS.length] += 1;
              if (added.incrementAndGet() == expected) {
                done.countDown();
              }
              return totals;
            },
            Materialized.<String, Map<String, long[]>, WindowStore<Bytes, byte[]>>as(STORE)
                .withKeySerde(Serdes.String())
                .withValueSerde(totalsSerde)
                // kept past the grace so the harness can read every window of a run back
                .withRetention(Duration.ofHours(1)))
        .toStream()
        .to(
            output,
            Produced.with(
                WindowedSerdes.timeWindowedSerdeFrom(String.class, Duration.ofMinutes(1).toMillis()),
                totalsSerde));

    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    AtomicBoolean announced = new AtomicBoolean();
    streams.setStateListener(
        (now, before) -> {
          if (now == KafkaStreams.State.RUNNING && !announced.getAndSet(true)) {
            System.out.println("{\"state\": \"RUNNING\"}");
            System.out.flush();
          }
        });
    streams.start();
    boolean finished = done.await(timeoutS, TimeUnit.SECONDS);
    long first = firstNanos.get();
    double seconds = first == 0 ? 0 : (System.nanoTime() - first) / 1e9;
    System.out.printf(
        "{\"events\": %d, \"seconds\": %.3f, \"timed_out\": %b}%n",
        added.get(), seconds, !finished);
    if (dumpTotals) {
      System.out.println(totalsJson(streams));
    }
    System.out.flush();
    streams.close(Duration.ofSeconds(10));
    streams.cleanUp();
  }

  /** Every window's totals in the store (through its cache): what a query would read. */
  private static String totalsJson(KafkaStreams streams) throws IOException {
    ReadOnlyWindowStore<String, Map<String, long[]>> store =
        streams.store(StoreQueryParameters.fromNameAndType(STORE, QueryableStoreTypes.windowStore()));
    List<List<Object>> rows = new ArrayList<>();
    try (KeyValueIterator<Windowed<String>, Map<String, long[]>> all = store.all()) {
      while (all.hasNext()) {
        KeyValue<Windowed<String>, Map<String, long[]>> kv = all.next();
        for (Map.Entry<String, long[]> e : kv.value.entrySet()) {
          List<Object> row = new ArrayList<>();
          row.add(kv.key.key());
          row.add(e.getKey());
          row.add(kv.key.window().start());
          for (long v : e.getValue()) {
            row.add(v);
          }
          rows.add(row);
        }
      }
    }
    return JSON.writeValueAsString(Map.of("totals", rows));
  }

  private static byte[] writeTotals(Map<String, long[]> totals) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (DataOutputStream out = new DataOutputStream(bytes)) {
      out.writeInt(totals.size());
      for (Map.Entry<String, long[]> e : totals.entrySet()) {
        out.writeUTF(e.getKey());
        for (long v : e.getValue()) {
          out.writeLong(v);
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return bytes.toByteArray();
  }

  private static Map<String, long[]> readTotals(byte[] raw) {
    Map<String, long[]> totals = new HashMap<>();
    if (raw == null) {
      return totals;
    }
    try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(raw))) {
      int n = in.readInt();
      for (int i = 0; i < n; i++) {
        String model = in.readUTF();
        long[] t = new long[TOKENS.length + 1];
        for (int j = 0; j < t.length; j++) {
          t[j] = in.readLong();
        }
        totals.put(model, t);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return totals;
  }
}
