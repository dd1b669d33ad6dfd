package sessionlake.spark;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.crypto.KeyAccessDeniedException;
import org.apache.parquet.crypto.keytools.KmsClient;

/**
 * KMS client that delegates unwrapping to a local helper process (alternative (a)): runs
 * `<sessionlake.kms.helper words...> <masterKeyID> <wrappedDEK>` and reads base64(dataKey) on
 * stdout; a non-zero exit is a refusal whose stderr becomes the exception message. AWS access
 * (S3 for the session key record, KMS Decrypt) is the helper's business: boto3's credential
 * chain, AWS_ENDPOINT_URL for an emulator. Unwrapped keys are cached in this JVM per wrappedDEK
 * (parquet-java does not cache single-wrapped data keys: it asks for each column of each file).
 */
public class HelperKmsClient implements KmsClient {
  private static final ConcurrentHashMap<String, byte[]> CACHE = new ConcurrentHashMap<>();
  private List<String> helper;
  private long timeoutSeconds;

  @Override
  public void initialize(Configuration conf, String kmsInstanceID, String kmsInstanceURL, String accessToken)
      throws KeyAccessDeniedException {
    String command = conf.getTrimmed("sessionlake.kms.helper");
    if (command == null || command.isEmpty()) {
      throw new KeyAccessDeniedException("sessionlake.kms.helper is not set");
    }
    helper = Arrays.asList(command.split("\\s+"));
    timeoutSeconds = conf.getLong("sessionlake.kms.helper.timeout.seconds", 60);
  }

  @Override
  public String wrapKey(byte[] keyBytes, String masterKeyIdentifier) throws KeyAccessDeniedException {
    throw new UnsupportedOperationException("sessionlake's lake is written by sessionlake only");
  }

  @Override
  public byte[] unwrapKey(String wrappedKey, String masterKeyIdentifier) throws KeyAccessDeniedException {
    byte[] cached = CACHE.get(wrappedKey);
    if (cached != null) return cached.clone();
    List<String> argv = new ArrayList<>(helper);
    argv.add(masterKeyIdentifier);
    argv.add(wrappedKey);
    try {
      Process process = new ProcessBuilder(argv).redirectInput(ProcessBuilder.Redirect.PIPE).start();
      process.getOutputStream().close();
      byte[] out = readAll(process.getInputStream());
      byte[] err = readAll(process.getErrorStream());
      if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        throw new KeyAccessDeniedException("key " + masterKeyIdentifier + ": helper timed out");
      }
      if (process.exitValue() != 0) {
        throw new KeyAccessDeniedException("key " + masterKeyIdentifier + ": "
            + new String(err, StandardCharsets.UTF_8).trim());
      }
      byte[] key = Base64.getDecoder().decode(new String(out, StandardCharsets.US_ASCII).trim());
      CACHE.put(wrappedKey, key);
      return key.clone();
    } catch (IOException e) {
      throw new KeyAccessDeniedException("key " + masterKeyIdentifier + ": helper failed: " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new KeyAccessDeniedException("key " + masterKeyIdentifier + ": interrupted", e);
    }
  }

  // Small outputs (a key, an error line): reading stdout then stderr cannot dead-lock.
  private static byte[] readAll(InputStream in) throws IOException {
    ByteArrayOutputStream buffer = new ByteArrayOutputStream();
    in.transferTo(buffer);
    return buffer.toByteArray();
  }
}
