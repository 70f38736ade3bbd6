# Long-lived syntax checker driven by elixir_coder.corpus.parser, which runs
# ElixirCoder.ParseServer.main() (the module compiled once into a cache folder).
#
# No Python package exposes the real Elixir parser, so Python talks to this
# script over stdin/stdout. It ONLY parses (Code.string_to_quoted/2): snippets
# are never evaluated, compiled or run.
#
# Protocol (every message is a frame: 4-byte big-endian length + raw bytes):
#   server -> client, once at start:  "ready"
#   client -> server, per snippet:    the snippet's bytes (any bytes at all)
#   server -> client, per snippet, in order:
#       "ok:<l1>,<l2>,..."            the snippet parses; the lines where its top-level
#                                     forms start, and those inside each defmodule, defimpl,
#                                     defprotocol and describe body: where a long file can be
#                                     cut between definitions
#       "error:<line>:<message>"      it does not (<line> is empty if unknown)
# The server exits when stdin reaches EOF.

defmodule ElixirCoder.ParseServer do
  @moduledoc false

  # Atoms that do not exist yet are never created, so hostile input cannot
  # exhaust the atom table: each fresh name is encoded as one of these
  # ordinary (non-special) atoms instead, and the parser accepts and rejects
  # exactly what it would with the real fresh atom. Distinct names get
  # distinct stand-ins so error messages can be translated back to the names
  # in the source.
  @pool_size 4096
  @pool List.to_tuple(for i <- 1..@pool_size, do: :"elixir_coder_fresh_#{i}")
  @overflow :elixir_coder_fresh_atom
  @max_message_bytes 4000
  # Parsing a file builds its charlist and AST, megabytes of short-lived terms: with the
  # default 233-word minimum heap the collector ran hundreds of times per file, 40% of the
  # parse time on the Elixir checkout. A 2 MB minimum heap (this process only) leaves it a
  # few runs per file, for 30 MB more resident memory (more gained little time and cost
  # 100 MB at 8 MB).
  @min_heap_words 256_000

  def main do
    # Nothing but framed answers may reach stdout: silence the logger (its
    # console handler writes to stdout) and put stdio in raw binary mode.
    :logger.set_primary_config(:level, :none)
    :ok = :io.setopts(:standard_io, binary: true, encoding: :latin1)
    Process.flag(:min_heap_size, @min_heap_words)
    # Load the tokenizer, parser and error paths now, not on the first request.
    answer("defmodule Warm.Up do\n  def f(x), do: [x | :ok]\nend\n")
    answer("defmodule Warm.Up do\n  def f(x) do\n")
    send_frame("ready")
    loop()
  end

  defp loop do
    case read_frame() do
      {:ok, code} ->
        send_frame(answer(code))
        loop()

      :eof ->
        System.halt(0)
    end
  end

  defp read_frame do
    case read_exact(4) do
      {:ok, <<size::32-big>>} -> read_exact(size)
      :eof -> :eof
    end
  end

  defp read_exact(0), do: {:ok, ""}
  defp read_exact(size), do: read_exact(size, [])

  defp read_exact(size, acc) do
    case IO.binread(:stdio, size) do
      data when is_binary(data) and byte_size(data) == size ->
        {:ok, IO.iodata_to_binary(Enum.reverse([data | acc]))}

      data when is_binary(data) ->
        read_exact(size - byte_size(data), [data | acc])

      _eof_or_error ->
        :eof
    end
  end

  defp send_frame(payload) do
    IO.binwrite(:stdio, [<<byte_size(payload)::32-big>>, payload])
  end

  @doc false
  def answer(code) do
    case check(code) do
      {:ok, lines} -> "ok:" <> Enum.join(lines, ",")
      {:error, line, message} -> "error:#{line}:#{truncate(message)}"
    end
  end

  # Messages quote the offending token, which may be a 1 MB identifier.
  defp truncate(message) when byte_size(message) > @max_message_bytes,
    do: String.slice(message, 0, div(@max_message_bytes, 4)) <> "..."

  defp truncate(message), do: message

  # Code.string_to_quoted/2 raises on invalid UTF-8; answer it as an error.
  defp check(code) do
    case :unicode.characters_to_binary(code) do
      ^code -> parse(code)
      {_, good, rest} -> {:error, line_at(good), "invalid UTF-8 starting at #{bad_bytes(rest)}"}
      _ -> {:error, "", "invalid UTF-8"}
    end
  end

  defp parse(code) do
    Process.put(:fresh_names, %{})
    opts = [static_atoms_encoder: &encode_atom/2, warn_on_unnecessary_quotes: false]

    case Code.string_to_quoted(code, opts) do
      {:ok, ast} -> {:ok, ast |> top_forms() |> Enum.flat_map(&form_lines/1) |> Enum.uniq() |> Enum.sort()}
      {:error, {location, message, token}} -> {:error, location_line(location), error_text(message, token)}
    end
  rescue
    exception -> {:error, "", "parser crashed: " <> Exception.message(exception)}
  catch
    kind, reason -> {:error, "", "parser crashed: #{inspect({kind, reason})}"}
  end

  defp top_forms({:__block__, _, forms}), do: forms
  defp top_forms(form), do: [form]

  # Containers whose body forms are themselves places to cut: modules and ExUnit describes.
  defp form_lines({name, meta, [_, [do: body]]})
       when name in [:defmodule, :defimpl, :defprotocol, :describe] and is_list(meta),
       do: List.wrap(meta[:line]) ++ Enum.flat_map(top_forms(body), &form_lines/1)

  defp form_lines({_, meta, _}) when is_list(meta), do: List.wrap(meta[:line])
  defp form_lines(_), do: []

  defp encode_atom(name, _meta) do
    {:ok, String.to_existing_atom(name)}
  rescue
    ArgumentError ->
      names = Process.get(:fresh_names)

      case names do
        %{^name => atom} ->
          {:ok, atom}

        _ when map_size(names) < @pool_size ->
          atom = elem(@pool, map_size(names))
          Process.put(:fresh_names, Map.put(names, name, atom))
          {:ok, atom}

        _ ->
          {:ok, @overflow}
      end
  end

  defp error_text(message, token) do
    text = message_text(message, to_text(token))

    if String.contains?(text, "elixir_coder_fresh_") do
      names = Process.get(:fresh_names)
      originals = Map.new(names, fn {name, atom} -> {Atom.to_string(atom), name} end)
      Regex.replace(~r/elixir_coder_fresh_\d+/, text, &Map.get(originals, &1, &1))
    else
      text
    end
  end

  # Mirrors how Elixir builds a SyntaxError message from the parser's tuple.
  defp message_text({prefix, suffix}, token), do: to_text(prefix) <> token <> to_text(suffix)
  defp message_text("syntax error before: ", ""), do: "syntax error: expression is incomplete"
  defp message_text(message, token), do: to_text(message) <> token

  defp location_line(location) when is_list(location), do: Keyword.get(location, :line, "")
  defp location_line(line) when is_integer(line), do: line
  defp location_line(_), do: ""

  defp to_text(text) when is_binary(text), do: text

  defp to_text(text) do
    IO.chardata_to_string(text)
  rescue
    _ -> inspect(text)
  end

  defp line_at(good), do: length(:binary.matches(good, "\n")) + 1

  defp bad_bytes(rest), do: inspect(binary_part(rest, 0, min(byte_size(rest), 4)))
end
